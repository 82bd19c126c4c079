"""Score a wave VAE checkpoint on whole pieces of real music, next to baselines that follow
nothing (a static noise with each file's average spectrum) and a reference (the input
low-passed at 4 kHz).

Metrics, all at the model's sample rate, on the first `--seconds` of each file:
MR-STFT (auraloss `MultiResolutionSTFTLoss`, FFT 2048..128, hop fft/4), DAC mel distance,
SI-SDR, loudness-envelope and spectral-change correlation, loudness difference (dB), and the
decoder's latent sensitivity (output change when z is zeroed or shuffled in time).

    python bench/fidelity_eval.py --vae_ckpt CKPT --files a.wav b.wav [--seconds 40]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import soxr
import torch
from scipy import signal
from torch import nn

from helius import fidelity, metrics
from helius.audio import io as audio_io
from helius.models.checkpoint import load_vae

BASELINE_ROWS = ("silence", "static_noise", "lowpass_4k")


def lowpass(audio: np.ndarray, sample_rate: int, cutoff: float = 4000.0) -> np.ndarray:
    """One biquad (2nd-order Butterworth, 12 dB per octave): a gentle reference, not a wall."""
    sos = signal.butter(2, cutoff, fs=sample_rate, output="sos")
    return signal.sosfilt(sos, audio).astype(np.float32)


def _mrstft():
    import auraloss

    return auraloss.freq.MultiResolutionSTFTLoss(
        fft_sizes=[2048, 1024, 512, 256, 128],
        hop_sizes=[512, 256, 128, 64, 32],
        win_lengths=[2048, 1024, 512, 256, 128],
    )


def score_pair(pred: torch.Tensor, target: torch.Tensor, sample_rate: int, mrstft) -> dict:
    pred, target = pred.reshape(1, 1, -1), target.reshape(1, 1, -1)
    return {
        "mrstft": float(mrstft(pred, target)),
        "mel": float(fidelity.dac_mel_distance(pred, target, sample_rate)),
        "si_sdr": float(metrics.si_sdr(pred, target)),
        "loudness_corr": float(fidelity.loudness_envelope_correlation(pred, target)),
        "spectral_change_corr": float(
            fidelity.spectral_change_correlation(pred, target, sample_rate)
        ),
        "loudness_diff_db": float(metrics.loudness_difference_db(pred, target)),
    }


@torch.no_grad()
def reconstruct(model, audio: np.ndarray, rate: int) -> tuple[np.ndarray, int, dict]:
    """A mono file at `rate` -> (its reconstruction at `rate`, the lag in samples at `rate`,
    the decoder's latent sensitivity). The model runs at its own rate; soxr converts."""
    model_rate = model.sample_rate
    x = soxr.resample(audio, rate, model_rate, quality="HQ") if rate != model_rate else audio
    hop = model.hop_samples
    frames = max(1, len(x) // hop)
    x = np.pad(x, (0, max(0, frames * hop - len(x))))[: frames * hop]
    mu, _ = model.encode(torch.from_numpy(np.ascontiguousarray(x)).reshape(1, 1, -1))
    out = model.decode(mu).flatten().numpy()
    sensitivity = fidelity.latent_sensitivity_db(model.decode, mu)
    if rate != model_rate:
        out = soxr.resample(out, model_rate, rate, quality="HQ")
    delay = round(int(getattr(model, "output_delay_samples", 0)) * rate / model_rate)
    return out[: len(audio)], delay, sensitivity


def evaluate(files: list[Path], seconds: float, models: dict[str, nn.Module]) -> dict:
    """Mean scores over `files` of each row (silence, the static baseline, the 4 kHz low-pass
    and every model in `models`), at each file's own sample rate, as the issue's independent
    measurement did; a model's output is resampled back to that rate."""
    torch.manual_seed(0)
    mrstft = _mrstft()
    per_row: dict[str, list[dict]] = {row: [] for row in (*BASELINE_ROWS, *models)}
    for path in files:
        audio, rate = audio_io.load(path, None, mono=True)
        audio = audio[0, : int(seconds * rate)]
        target = torch.as_tensor(audio, dtype=torch.float32)
        baselines = {
            "silence": torch.zeros_like(target),
            "static_noise": fidelity.static_spectrum_baseline(target),
            "lowpass_4k": torch.as_tensor(lowpass(audio, rate)),
        }
        for row, pred in baselines.items():
            per_row[row].append(score_pair(pred, target, rate, mrstft))
        for row, model in models.items():
            out, delay, sensitivity = reconstruct(model, audio, rate)
            out_t = torch.as_tensor(out, dtype=torch.float32)
            aligned_target = target[: len(target) - delay] if delay else target
            out_t = out_t[delay:] if delay else out_t
            length = min(len(out_t), len(aligned_target))
            scores = score_pair(out_t[:length], aligned_target[:length], rate, mrstft)
            scores.update(sensitivity)
            per_row[row].append(scores)
    return {
        row: {key: float(np.mean([s[key] for s in rows])) for key in rows[0]}
        for row, rows in per_row.items()
        if rows
    }


def print_table(result: dict) -> None:
    keys = list(max(result.values(), key=len).keys())
    print(f"{'row':<14}" + "".join(f"{k[:14]:>15}" for k in keys))
    for row, values in result.items():
        print(f"{row:<14}" + "".join(f"{values.get(k, float('nan')):>15.3f}" for k in keys))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vae_ckpt", type=Path)
    parser.add_argument("--files", type=Path, nargs="+", required=True)
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    models = {"model": load_vae(args.vae_ckpt, "cpu")[0]} if args.vae_ckpt else {}
    result = evaluate(args.files, args.seconds, models)
    print_table(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
