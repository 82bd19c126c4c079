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
