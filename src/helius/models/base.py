"""What every Helius VAE returns from a training forward pass, shared by the trainer."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
from torch import nn


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


def variance_preserving_(module: nn.Module) -> bool:
    """Give one conv, transposed conv or Linear a variance-preserving init in place: weights
    normal with std 1/sqrt(fan_in), bias zero. False (untouched) for any other module.

    PyTorch's default shrinks the signal at every layer and gives every layer a random bias;
    in a deep decoder those biases alone make a steady sound that the latent cannot move
    (issue #12). Cached (streaming) convs are subclasses of the torch convs, so they count.
    """
    if isinstance(module, nn.ConvTranspose1d):
        # Each output sample sums in_channels x kernel / stride products.
        fan_in = module.weight.shape[0] * module.weight.shape[2] // module.stride[0]
    elif isinstance(module, nn.Conv1d):
        fan_in = module.weight.shape[1] * module.weight.shape[2]
    elif isinstance(module, nn.Linear):
        fan_in = module.weight.shape[1]
    else:
        return False
    with torch.no_grad():
        nn.init.normal_(module.weight, std=fan_in**-0.5)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    return True
