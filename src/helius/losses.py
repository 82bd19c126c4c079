"""Training losses: multi-resolution STFT reconstruction, KL with free bits, beta schedules, skips.

Pure differentiable functions over tensors; the STFT and its log-magnitude + spectral convergence
distance come from `helius.metrics`, so a loss of 0 here is a metric of 0 there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from helius.config import BetaConfig, LossConfig
from helius.errors import ConfigError
from helius.fidelity import dac_mel_distance, frame_loudness_db
from helius.metrics import (
    as_signal_pair,
    fitting_fft_sizes,
    magnitude,
    spectrum_distance,
    stft_frames,
)

__all__ = [
    "CLIP_FFT_SIZES",
    "WAVE_FFT_SIZES",
    "beta_at",
    "kl_loss",
    "kl_per_dim",
    "pre_emphasis",
    "reconstruction_loss",
    "skip_consistency_loss",
]

WAVE_FFT_SIZES = (2048, 1024, 512, 256, 128)
CLIP_FFT_SIZES = (4096, 2048, 1024, 512, 256, 128)

_EPS = 1e-7
# Frames quieter than this (dB re full scale) all count as this in the loudness term: fades to
# digital silence would otherwise dominate it.
LOUDNESS_FLOOR_DB = -70.0


def pre_emphasis(x: torch.Tensor, coefficient: float) -> torch.Tensor:
    """First-order high-pass y[n] = x[n] - coefficient * x[n-1] over the last axis (x[-1] = 0).

    Its gain rises from 1 - coefficient at DC to 1 + coefficient at Nyquist.
    """
    return torch.cat([x[..., :1], x[..., 1:] - coefficient * x[..., :-1]], dim=-1)


def reconstruction_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    config: LossConfig,
    default_fft_sizes: Sequence[int],
    sample_rate: int | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Multi-resolution STFT loss plus optional phase and waveform terms; (total, parts).

    pred and target are (B, C, T) (or (T,), (B, T)); every channel is one mono signal.
    - "stft": mean over resolutions of log-magnitude L1 + spectral convergence, exactly
      `metrics.mrstft_distance(..., eps=config.log_epsilon)` of the (optionally
      pre-emphasised) pair. FFT sizes are `config.fft_sizes` or `default_fft_sizes`; sizes
      longer than the signal are skipped. The log floor `log_epsilon` sets which bins count: at
      1e-7 an inaudible bin weighs as much as a loud one, and the loss rates a faithful copy
      with a -30 dB noise floor below a static average sound (issue #12).
    - "mel" (if `config.mel_weight` > 0): weight times `fidelity.dac_mel_distance` (needs
      `sample_rate`).
    - "phase" (if `config.phase_weight` > 0): L1 between the real and imaginary STFT parts,
      divided by the target's mean magnitude at that resolution so it is unitless and of the
      order of the magnitude terms whatever the level; mean over resolutions, times the weight.
      Magnitude losses are blind to phase (a polarity flip costs nothing); this term is not.
    - "loudness" (if `config.loudness_weight` > 0): weight times the mean absolute difference
      of `fidelity.frame_loudness_db` (2048-sample frames, hop 512, floored at -70 dB) of pred
      and target, in units of 10 dB. Per-bin log distances let a decoder that smooths spectral
      peaks sit several dB under the input; a frame's level is a sum over its bins, so this
      term sees that (issue #12).
    - "wave_l1" (if `config.waveform_l1_weight` > 0): weight times mean |pred - target| of the
      raw samples (never pre-emphasised: it anchors the waveform itself).
    Pre-emphasis (`config.pre_emphasis`) filters both signals before the STFT terms. The
    log-magnitude L1 is invariant to a per-bin gain, so the filter acts mostly through spectral
    convergence and the phase term: errors in the highs then weigh more than errors in the lows.
    """
    pred_signals, target_signals = as_signal_pair(pred, target)
    sizes = fitting_fft_sizes(
        config.fft_sizes or default_fft_sizes, pred_signals.shape[-1], config.hop_ratio
    )
    if config.pre_emphasis is not None:
        spectral_pred = pre_emphasis(pred_signals, config.pre_emphasis)
        spectral_target = pre_emphasis(target_signals, config.pre_emphasis)
    else:
        spectral_pred, spectral_target = pred_signals, target_signals

    stft_total = pred_signals.new_zeros(())
    phase_total = pred_signals.new_zeros(())
    for n_fft in sizes:
        pred_spec = stft_frames(spectral_pred, n_fft, config.hop_ratio)
        target_spec = stft_frames(spectral_target, n_fft, config.hop_ratio)
        target_mag = magnitude(target_spec)
        stft_total = stft_total + spectrum_distance(pred_spec, target_mag, config.log_epsilon)
        if config.phase_weight > 0:
            complex_l1 = (pred_spec.real - target_spec.real).abs().mean() + (
                pred_spec.imag - target_spec.imag
            ).abs().mean()
            phase_total = phase_total + complex_l1 / (target_mag.mean() + _EPS)

    parts = {"stft": stft_total / len(sizes)}
    if config.mel_weight > 0:
        if sample_rate is None:
            raise ValueError("train.loss.mel_weight > 0 needs the sample rate")
        mel = dac_mel_distance(pred_signals, target_signals, sample_rate)
        parts["mel"] = config.mel_weight * mel
    if config.loudness_weight > 0:
        level_gap = frame_loudness_db(pred_signals, floor_db=LOUDNESS_FLOOR_DB) - (
            frame_loudness_db(target_signals, floor_db=LOUDNESS_FLOOR_DB)
        )
        parts["loudness"] = config.loudness_weight * level_gap.abs().mean() / 10.0
    if config.phase_weight > 0:
        parts["phase"] = config.phase_weight * phase_total / len(sizes)
    if config.waveform_l1_weight > 0:
        parts["wave_l1"] = config.waveform_l1_weight * (pred_signals - target_signals).abs().mean()
    total = torch.stack(list(parts.values())).sum()
    return total, parts


def kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) in nats per latent dimension, shape (D,).

    mu and logvar are (B, D) or (B, D, frames); the KL is averaged over the batch and, for
    sequence latents, over frames, so it is the cost of one latent vector.
    """
    if mu.shape != logvar.shape or mu.ndim not in (2, 3):
        raise ValueError(
            f"mu and logvar must share a (B, D) or (B, D, frames) shape, "
            f"got {tuple(mu.shape)} and {tuple(logvar.shape)}"
        )
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)
    reduce_dims = (0, 2) if kl.ndim == 3 else (0,)
    return kl.mean(dim=reduce_dims)


def kl_loss(
    mu: torch.Tensor, logvar: torch.Tensor, free_bits: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum over dims of max(KL_d, free_bits), detached per-dim KL for logging).

    `free_bits` is in nats per dimension (despite the name, the usual one in the literature).
    A dimension whose KL is below it pays the constant free_bits and gets no gradient from
    the KL at all, so the encoder may spend that much information in every dimension for free;
    this keeps dimensions from collapsing to the prior early in training.
    """
    per_dim = kl_per_dim(mu, logvar)
    # clamp passes no gradient to clamped elements: exactly the free-bits rule.
    penalised = per_dim.clamp(min=free_bits).sum()
    return penalised, per_dim.detach()


def beta_at(step: int, config: BetaConfig) -> float:
    """KL weight at an optimizer step (counted from 0) under `config.schedule`.

    - constant: beta at every step.
    - linear: 0 at step 0, rising linearly to beta at warmup_steps, then beta.
    - cyclical: every cycle_steps the weight restarts at 0, ramps linearly to beta over the
      first half of the cycle and holds beta for the second half.
    - log: geometric from beta_start (step 0) to beta (warmup_steps), i.e. linear in
      log(beta), then beta; RAVE's warm-up. Needs beta_start > 0.
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if config.schedule == "constant":
        return config.beta
    if config.schedule == "linear":
        return config.beta * min(step / config.warmup_steps, 1.0)
    if config.schedule == "cyclical":
        ramp_steps = config.cycle_steps / 2
        return config.beta * min((step % config.cycle_steps) / ramp_steps, 1.0)
    if config.schedule == "log":
        if config.beta == 0:
            return 0.0
        if config.beta_start <= 0:
            raise ConfigError(
                "train.kl.beta_start must be > 0 for the log schedule "
                f"(got {config.beta_start}); e.g. --set train.kl.beta_start=1e-4"
            )
        progress = min(step / config.warmup_steps, 1.0)
        log_beta = (1 - progress) * math.log(config.beta_start) + progress * math.log(config.beta)
        return config.beta if progress >= 1.0 else math.exp(log_beta)
    raise ValueError(f"unknown beta schedule {config.schedule!r}")


def skip_consistency_loss(
    generated: Sequence[torch.Tensor], real: Sequence[torch.Tensor]
) -> torch.Tensor:
    """Mean over skip levels of MSE + (1 - cosine similarity) of generated vs detached real.

    Each level is (B, C, T). The cosine is taken per batch item over the whole flattened
    (C * T) feature map, then averaged over the batch: it weighs time steps by their energy, so
    near-silent steps (where a per-step direction is mostly noise) do not dominate. The real
    skips are detached: the encoder is never pulled towards what the generator can produce.
    """
    if len(generated) != len(real) or not generated:
        raise ValueError(
            f"need the same non-zero number of generated and real skips, "
            f"got {len(generated)} and {len(real)}"
        )
    total = generated[0].new_zeros(())
    for level, (fake, true) in enumerate(zip(generated, real, strict=True)):
        if fake.shape != true.shape:
            raise ValueError(
                f"skip level {level}: generated {tuple(fake.shape)} vs real {tuple(true.shape)}"
            )
        true = true.detach()
        mse = F.mse_loss(fake, true)
        cosine = F.cosine_similarity(fake.flatten(1), true.flatten(1), dim=1, eps=1e-8)
        total = total + mse + (1.0 - cosine).mean()
    return total / len(generated)
