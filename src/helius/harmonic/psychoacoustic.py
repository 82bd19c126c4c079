"""Psychoacoustic pieces of the mel VAE objective: Bark scale and Schroeder's spreading function."""

from __future__ import annotations

import torch


def hz_to_bark(frequency_hz: torch.Tensor) -> torch.Tensor:
    """Zwicker & Terhardt's critical-band rate: 13 atan(0.00076 f) + 3.5 atan((f / 7500)^2)."""
    high = torch.atan((frequency_hz / 7500.0) ** 2)
    return 13.0 * torch.atan(0.00076 * frequency_hz) + 3.5 * high


def schroeder_spreading_db(delta_bark: torch.Tensor) -> torch.Tensor:
    """Schroeder's spreading function in dB for a maskee dz Bark above the masker.

    10 log10 S = 15.81 + 7.5 (dz + 0.474) - 17.5 sqrt(1 + (dz + 0.474)^2)
    """
    shifted = delta_bark + 0.474
    return 15.81 + 7.5 * shifted - 17.5 * torch.sqrt(1.0 + shifted**2)


DB_PER_LOG_MAGNITUDE = 20.0 / 2.302585092994046  # natural-log magnitude -> dB


def masking_threshold_db(
    log_mel: torch.Tensor, mel_frequencies_hz: torch.Tensor, offset_db: float = 10.0
) -> torch.Tensor:
    """(B, n_mels, frames) natural-log mel magnitudes -> simultaneous-masking threshold in dB.

    Each band's power is spread over the others by Schroeder's function of their Bark
    distance, summed in power, and lowered by `offset_db` (a masker hides less than its level).
    """
    bark = hz_to_bark(mel_frequencies_hz.to(log_mel))
    delta = bark[:, None] - bark[None, :]  # [maskee, masker]
    spreading = 10.0 ** (schroeder_spreading_db(delta) / 10.0)
    power = 10.0 ** (log_mel * DB_PER_LOG_MAGNITUDE / 10.0)
    spread = torch.einsum("km,bmt->bkt", spreading, power)
    return 10.0 * torch.log10(spread.clamp_min(1e-20)) - offset_db


def masking_weights(
    log_mel: torch.Tensor, mel_frequencies_hz: torch.Tensor, offset_db: float = 10.0
) -> torch.Tensor:
    """Per-bin weights in (0, 1]: w = sigmoid((L - T) / 6 dB) with L the bin's level and T the
    masking threshold, so a bin well under the threshold (masked) costs little and one well
    above it costs fully."""
    level_db = log_mel * DB_PER_LOG_MAGNITUDE
    threshold = masking_threshold_db(log_mel, mel_frequencies_hz, offset_db)
    return torch.sigmoid((level_db - threshold) / 6.0)


def masked_l1(
    predicted: torch.Tensor, target: torch.Tensor, mel_frequencies_hz: torch.Tensor
) -> torch.Tensor:
    """Log-mel L1 weighted by the target's masking weights (normalised to mean 1)."""
    weights = masking_weights(target, mel_frequencies_hz).detach()
    weights = weights / weights.mean().clamp_min(1e-8)
    return (weights * (predicted - target).abs()).mean()


def harmonicity_loss(
    predicted: torch.Tensor,
    target: torch.Tensor,
    mel_frequencies_hz: torch.Tensor,
    tolerance_semitones: float = 0.5,
) -> torch.Tensor:
    """Share of the prediction's power that lies off the target's harmonic comb, in [0, 1].

    Per frame the target's strongest band gives the fundamental f0; bands within
    `tolerance_semitones` of an integer multiple k f0 form the comb. Harmonic series are what
    makes a tone read as pitched, so power drawn between harmonics sounds rough or noisy even
    when an L1 on log-mel barely sees it.
    """
    freqs = mel_frequencies_hz.to(target)
    f0 = freqs[target.argmax(dim=1)]  # (B, frames)
    ratio = freqs[None, :, None] / f0[:, None, :].clamp_min(1.0)
    nearest = ratio.round().clamp_min(1.0)
    off_semitones = 12.0 * torch.log2(ratio.clamp_min(1e-6) / nearest).abs()
    comb = (off_semitones <= tolerance_semitones).to(predicted)
    # Each band's share of the frame's power (exp(log-mel)^2), as a softmax so that no level,
    # however loud or quiet early in training, overflows (inf / inf) or vanishes (0 / 0).
    share = torch.softmax(2.0 * predicted, dim=1)
    return 1.0 - (comb * share).sum(dim=1).mean()
