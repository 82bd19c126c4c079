"""What every Helius VAE returns from a training forward pass, shared by the trainer."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch


@dataclass
class VAEOutput:
    """A VAE forward pass: reconstruction, posterior and any model-specific losses.

    Shapes: audio (B, C, T) like the input; mu, logvar and z are (B, D, frames) for the wave
    VAE and (B, D) for the clip VAE. `aux_losses` hold already-weighted terms the trainer adds
    to the objective and logs by name (e.g. the clip VAE's skip consistency).
    """

    audio: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor
    z: torch.Tensor
    aux_losses: dict[str, torch.Tensor] = field(default_factory=dict)


def frozen_if(frozen: bool):
    """torch.no_grad() when `frozen` (an encoder held fixed in adversarial fine-tuning)."""
    return torch.no_grad() if frozen else contextlib.nullcontext()


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, sample: bool) -> torch.Tensor:
    """z = mu + sigma * eps when sampling (training), else mu."""
    if not sample:
        return mu
    return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
