"""Random walks through latent space: smooth (momentum), bounded (pull to the origin), seeded."""

from __future__ import annotations

import math

import torch

__all__ = ["random_walk", "stationary_std"]


def random_walk(
    start: torch.Tensor,
    steps: int,
    step_size: float = 0.1,
    momentum: float = 0.8,
    pull: float = 0.05,
    temperature: float = 1.0,
    seed: int = 0,
) -> torch.Tensor:
    """Positions (steps, D) after each of `steps` steps from `start` (D,); start itself excluded.

    Per step, with fresh noise ~ N(0, I) from the walk's own generator:
        velocity = momentum * velocity + (1 - momentum) * temperature * step_size * noise
        position = position + velocity
        position = position - pull * position
    Momentum makes the path smooth (it glides instead of jittering); the pull toward the
    origin keeps it inside the region the VAE learned under its N(0, I) prior. The walk
    settles to a spread of `stationary_std(...)` per dimension (see there); the same
    arguments and seed always give the same path.
    """
    if start.ndim != 1:
        raise ValueError(f"a walk starts from a latent vector (D,), got shape {tuple(start.shape)}")
    if steps < 0:
        raise ValueError(f"steps must not be negative, got {steps}")
    if not 0.0 <= momentum < 1.0 or not 0.0 <= pull < 1.0:
        raise ValueError(f"need 0 <= momentum < 1 and 0 <= pull < 1, got {momentum}, {pull}")
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(steps, start.shape[0], generator=generator, dtype=torch.float64)
    kick = (1.0 - momentum) * temperature * step_size
    position = start.detach().to(torch.float64).cpu().clone()
    velocity = torch.zeros_like(position)
    path = torch.empty(steps, start.shape[0], dtype=torch.float64)
    for step in range(steps):
        velocity = momentum * velocity + kick * noise[step]
        position = position + velocity
        position = position - pull * position
        path[step] = position
    return path.to(dtype=start.dtype if start.is_floating_point() else torch.float32)


def stationary_std(
    step_size: float = 0.1, momentum: float = 0.8, pull: float = 0.05, temperature: float = 1.0
) -> float:
    """The per-dimension standard deviation a long `random_walk` settles to.

    The velocity is an AR(1) process of variance (1 - m) / (1 + m) (T s)^2 and the position a
    second AR(1) with coefficient a = 1 - pull driven by it, which gives
        var = (1 - m)/(1 + m) (T s)^2 a^2 (1 + a m) / ((1 - a^2)(1 - a m)).
    At the defaults this is about 0.27: the walk stays well inside N(0, I). A temperature of
    1 / stationary_std(..., temperature=1) makes it wander over the whole prior (norm ~ sqrt(D)).
    """
    if pull <= 0.0:
        return math.inf
    a, m = 1.0 - pull, momentum
    velocity_var = (1.0 - m) / (1.0 + m) * (temperature * step_size) ** 2
    return math.sqrt(velocity_var * a * a * (1.0 + a * m) / ((1.0 - a * a) * (1.0 - a * m)))
