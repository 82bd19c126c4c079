"""Metrics a static output cannot pass: does a reconstruction follow its input, and does the
decoder use its latent at all?

An "average sound" (a static drone with the data's mean spectrum) beats silence and an
untrained model on every spectral distance, so those comparisons cannot catch posterior
collapse. These can:
- `loudness_envelope_correlation`: Pearson correlation of the per-frame loudness (dB) of input
  and output; a static output scores about 0, a faithful one near 1.
- `spectral_change_correlation`: per frame, the correlation over mel bands of the input's and
  the output's log-mel frame after each band's mean over time is removed, averaged over frames;
  it asks whether the output's spectrum *moves* the way the input's does.
- `dac_mel_distance`: L1 of log10 mel magnitudes over windows 2048/512/128 with 80/40/20 mels
  (DAC's mel loss, magnitude power 1, floor 1e-5), summed over resolutions.
- `latent_sensitivity_db`: how much the decoder's output changes, in dB relative to the output,
  when its latent is replaced by zeros or shuffled in time. A decoder that ignores the latent
  (posterior collapse) gives a very negative number (-30 dB or less); one that uses it, a few
  dB below 0 or more.

Every function takes (T,), (B, T) or (B, C, T) tensors (each channel of each item is one mono
signal) and returns a float tensor averaged over the signals.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from helius.metrics import (
    _mel_basis,
    as_signal_pair,
    loudness_difference_db,
    stft_frames,
)

__all__ = [
    "COLLAPSE_SENSITIVITY_DB",
    "dac_mel_distance",
    "follow_metrics",
    "follow_report",
    "follow_verdict",
    "frame_loudness_db",
    "latent_sensitivity_db",
    "loudness_envelope_correlation",
    "spectral_change_correlation",
    "static_spectrum_baseline",
]

# Output change (dB re the output) below which a decoder is taken to ignore its latent: zeros
# for the latent then change the output by less than 1/30 of its energy.
COLLAPSE_SENSITIVITY_DB = -15.0
_DAC_MEL = ((2048, 80), (512, 40), (128, 20))


def frame_loudness_db(
    signals: torch.Tensor, frame: int = 2048, hop: int = 512, floor_db: float = -100.0
) -> torch.Tensor:
    """(N, T) -> (N, frames): mean-square level of each frame in dB re full scale.

    Frames start every `hop` samples; a signal shorter than one frame is one zero-padded frame.
    """
    if signals.shape[-1] < frame:
        signals = torch.nn.functional.pad(signals, (0, frame - signals.shape[-1]))
    frames = signals.unfold(-1, frame, hop)
    power = frames.pow(2).mean(dim=-1)
    return (10.0 * torch.log10(power + 10.0 ** (floor_db / 10.0))).clamp(min=floor_db)


def _pearson(a: torch.Tensor, b: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Pearson correlation along `dim`; 0 where either side is constant (nothing to follow)."""
    a = a - a.mean(dim=dim, keepdim=True)
    b = b - b.mean(dim=dim, keepdim=True)
    norm = a.norm(dim=dim) * b.norm(dim=dim)
    tiny = torch.finfo(a.dtype).tiny
    return torch.where(norm > tiny, (a * b).sum(dim=dim) / norm.clamp_min(tiny), 0.0)


def loudness_envelope_correlation(
    pred: torch.Tensor, target: torch.Tensor, frame: int = 2048, hop: int = 512
) -> torch.Tensor:
    """Pearson correlation of the frame loudness (dB) of pred and target, mean over signals."""
    pred, target = as_signal_pair(pred, target)
    pred_db, target_db = frame_loudness_db(pred, frame, hop), frame_loudness_db(target, frame, hop)
    return _pearson(pred_db, target_db).mean()


def _log_mel_frames(
    signals: torch.Tensor, sample_rate: int, n_fft: int, n_mels: int, floor: float
) -> torch.Tensor:
    """(N, T) -> (N, n_mels, frames): log10 of mel magnitudes, hop n_fft / 4, floored.

    The magnitude is sqrt(re^2 + im^2 + 1e-20): as a loss term its gradient stays finite at a
    silent bin (a plain sqrt's is infinite there, and 0 * inf made the spectral design's first
    step NaN, whose output starts with exact zeros). The STFT is `stft_frames` (the same
    frames as torch.stft, with a fast backward)."""
    basis = _mel_basis(sample_rate, n_fft, n_mels, 0.0, None, signals.device, signals.dtype)
    parts = torch.view_as_real(stft_frames(signals, n_fft, 0.25))
    power = torch.addcmul(parts[..., 0] * parts[..., 0], parts[..., 1], parts[..., 1])
    mel = (power + 1e-20).sqrt() @ basis.transpose(0, 1)  # (N, frames, n_mels)
    return torch.log10(mel.clamp_min(floor)).transpose(1, 2)


def spectral_change_correlation(
    pred: torch.Tensor,
    target: torch.Tensor,
    sample_rate: int,
    n_fft: int = 2048,
    n_mels: int = 80,
) -> torch.Tensor:
    """Mean over frames (and signals) of the correlation over mel bands between the input's
    and the output's log-mel frame, each band's mean over time removed first.

    A static output, whatever its spectrum, has nothing left after the mean is removed and
    scores 0; an output whose spectrum changes as the input's does scores near 1.
    """
    pred, target = as_signal_pair(pred, target)
    pred_mel = _log_mel_frames(pred, sample_rate, n_fft, n_mels, 1e-5)
    target_mel = _log_mel_frames(target, sample_rate, n_fft, n_mels, 1e-5)
    pred_change = pred_mel - pred_mel.mean(dim=-1, keepdim=True)
    target_change = target_mel - target_mel.mean(dim=-1, keepdim=True)
    return _pearson(pred_change, target_change, dim=1).mean()


def dac_mel_distance(
    pred: torch.Tensor,
    target: torch.Tensor,
    sample_rate: int,
    resolutions: Sequence[tuple[int, int]] = _DAC_MEL,
) -> torch.Tensor:
    """L1 of log10 mel magnitudes (floor 1e-5) over (n_fft, n_mels) resolutions, summed over
    resolutions as DAC's mel loss does; windows longer than the signal are skipped."""
    pred, target = as_signal_pair(pred, target)
    fitting = [(n_fft, mels) for n_fft, mels in resolutions if n_fft <= pred.shape[-1]]
    if not fitting:
        raise ValueError(f"signal of {pred.shape[-1]} samples is shorter than every window")
    total = pred.new_zeros(())
    for n_fft, n_mels in fitting:
        pred_mel = _log_mel_frames(pred, sample_rate, n_fft, n_mels, 1e-5)
        target_mel = _log_mel_frames(target, sample_rate, n_fft, n_mels, 1e-5)
        total = total + (pred_mel - target_mel).abs().mean()
    return total


def follow_metrics(pred: torch.Tensor, target: torch.Tensor, sample_rate: int) -> dict[str, float]:
    """The follow metrics of one pair: loudness-envelope and spectral-change correlation."""
    return {
        "loudness_corr": float(loudness_envelope_correlation(pred, target)),
        "spectral_change_corr": float(spectral_change_correlation(pred, target, sample_rate)),
    }


def _change_db(changed: torch.Tensor, reference: torch.Tensor) -> float:
    """10 log10(|changed - reference|^2 / |reference|^2); -100 dB for identical outputs."""
    error = (changed - reference).double().pow(2).sum()
    energy = reference.double().pow(2).sum().clamp_min(1e-20)
    return float((10.0 * torch.log10(error / energy + 1e-10)).clamp(min=-100.0))


@torch.no_grad()
def latent_sensitivity_db(
    decode: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor, seed: int = 0
) -> dict[str, float]:
    """How much `decode(z)` changes when z is replaced by zeros or shuffled along time.

    z is (B, D, frames) (a sequence latent) or (B, D) (one latent per clip: there "shuffled"
    permutes the batch, which needs B >= 2; with B = 1 only "zeros" is measured). Returns
    {"sensitivity_zero_db": ..., "sensitivity_shuffle_db": ...} in dB relative to the output's
    energy: about 0 dB or more when the latent decides the output, very negative when the
    decoder ignores it.
    """

    def decode_seeded(latent: torch.Tensor) -> torch.Tensor:
        # The same noise for every call: a decoder with a noise branch would otherwise differ
        # between two calls by a fresh noise draw, and seem to use z when only noise changed.
        with torch.random.fork_rng(devices=[z.device] if z.device.type == "cuda" else []):
            torch.manual_seed(seed)
            return decode(latent)

    reference = decode_seeded(z)
    result = {"sensitivity_zero_db": _change_db(decode_seeded(torch.zeros_like(z)), reference)}
    generator = torch.Generator().manual_seed(seed)
    if z.dim() == 3 and z.shape[-1] >= 2:
        order = torch.randperm(z.shape[-1], generator=generator).to(z.device)
        result["sensitivity_shuffle_db"] = _change_db(decode_seeded(z[..., order]), reference)
    elif z.dim() == 2 and z.shape[0] >= 2:
        order = torch.roll(torch.arange(z.shape[0]), 1).to(z.device)
        result["sensitivity_shuffle_db"] = _change_db(decode_seeded(z[order]), reference)
    return result


def static_spectrum_baseline(audio: torch.Tensor, seed: int = 0, n_fft: int = 2048) -> torch.Tensor:
    """Noise with `audio`'s average magnitude spectrum in every frame, at its RMS level.

    The "average sound" a collapsed model produces: it matches the long-term spectrum and the
    level of the input and follows nothing. audio is (T,) or (..., T); so is the result.
    """
    shape = audio.shape
    signals = audio.reshape(-1, shape[-1]).float()
    n_fft = min(n_fft, 1 << (signals.shape[-1].bit_length() - 1))
    window = torch.hann_window(n_fft, device=signals.device)
    hop = n_fft // 4

    def spectrum(x: torch.Tensor) -> torch.Tensor:
        return torch.stft(x, n_fft, hop, window=window, center=True, return_complex=True)

    average = spectrum(signals).abs().mean(dim=-1, keepdim=True)
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(signals.shape, generator=generator).to(signals.device)
    noise_spec = spectrum(noise)
    phase = noise_spec / noise_spec.abs().clamp_min(1e-12)
    shaped = torch.istft(average * phase, n_fft, hop, window=window, length=signals.shape[-1])
    gain = (
        signals.pow(2).mean(-1, keepdim=True)
        / shaped.pow(2).mean(-1, keepdim=True).clamp_min(1e-20)
    ).sqrt()
    return (shaped * gain).reshape(shape).to(audio.dtype)


def follow_report(
    pred: torch.Tensor, target: torch.Tensor, sample_rate: int, delay_samples: int = 0
) -> dict[str, Any]:
    """Follow metrics, level and mel distance of a reconstruction and of the static baseline
    of the same input, with a one-sentence verdict on how well the model follows.

    `delay_samples`: the reconstruction's constant lag behind its input, taken out first.
    """
    if 0 < delay_samples < target.shape[-1]:
        pred, target = pred[..., delay_samples:], target[..., :-delay_samples]
    static = static_spectrum_baseline(target)
    rows = {}
    for name, output in (("model", pred), ("static baseline", static)):
        rows[name] = {
            **follow_metrics(output, target, sample_rate),
            "loudness_diff_db": float(loudness_difference_db(output, target)),
            "mel_distance": float(dac_mel_distance(output, target, sample_rate)),
        }
    return {"rows": rows, "verdict": follow_verdict(rows["model"])}


def follow_verdict(scores: dict[str, float]) -> str:
    """How well a reconstruction follows its input, in words, from its follow metrics."""
    loudness, change = scores["loudness_corr"], scores["spectral_change_corr"]
    level = abs(scores["loudness_diff_db"])
    if loudness >= 0.9 and change >= 0.5 and level <= 2.0:
        quality = "follows its input closely: loudness and spectral changes track the original"
    elif loudness >= 0.9 and level <= 2.0:
        quality = (
            "follows the input's loudness, but its timbre changes only partly track the original"
        )
    elif loudness >= 0.6:
        quality = "follows the input only roughly: train longer for a faithful reconstruction"
    else:
        quality = (
            "does not follow its input yet (an average sound): train longer, or see the "
            "section Does the model follow its input? in docs/core.md"
        )
    return (
        f"The model {quality} (loudness envelope correlation {loudness:.2f}, spectral-change "
        f"correlation {change:.2f}, level {scores['loudness_diff_db']:+.1f} dB)."
    )
