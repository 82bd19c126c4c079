"""Variations of a sound: seeded Gaussian perturbations of its latent."""

from __future__ import annotations

import torch

__all__ = ["variations"]


def variations(center: torch.Tensor, k: int, sigma: float, seed: int = 0) -> torch.Tensor:
    """k latents center + sigma * N(0, I), shape (k, *center.shape); the same seed, the same set.

    Works on vectors (D,) and trajectories (D, frames) alike (every value is perturbed).
    """
    if k < 0 or sigma < 0:
        raise ValueError(f"need k >= 0 and sigma >= 0, got k={k}, sigma={sigma}")
    generator = torch.Generator().manual_seed(seed)
    dtype = center.dtype if center.is_floating_point() else torch.float32
    noise = torch.randn((k, *center.shape), generator=generator, dtype=dtype)
    return center.detach().cpu().to(dtype) + sigma * noise
