"""Interpolation between latents: linear, spherical (slerp) and whole morph paths.

Latents are vectors (D,) or trajectories (D, frames). Spherical interpolation treats dim 0 as
the vector dimension and every other position (every frame column) as its own vector, so a
trajectory morphs frame by frame.
"""

from __future__ import annotations

import torch

__all__ = ["MORPH_MODES", "lerp", "morph_path", "slerp"]

MORPH_MODES = ("linear", "slerp")

# Below this angle (radians) between a and b, slerp's sin(angle) denominator loses precision
# and the arc is indistinguishable from the chord: use the chord.
_PARALLEL_ANGLE = 1e-4
# A vector shorter than this has no direction to rotate.
_ZERO_NORM = 1e-8


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"cannot interpolate latents of different shapes {tuple(a.shape)} and {tuple(b.shape)}"
        )


def lerp(a: torch.Tensor, b: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """(1 - t) a + t b; t = 0 gives a, t = 1 gives b."""
    _check_pair(a, b)
    return a + (b - a) * t


def slerp(a: torch.Tensor, b: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """Spherical interpolation along the great arc from a to b (per frame column).

    Unit vectors stay unit vectors, and vectors of equal norm keep it, so a path between two
    typical prior samples stays on the shell where N(0, I) puts its mass instead of cutting
    through the (atypical) centre. Falls back to `lerp` where a and b are nearly parallel
    (angle < 1e-4 rad), nearly opposite (the arc is not defined) or either is about zero.
    """
    _check_pair(a, b)
    t = torch.as_tensor(t, dtype=a.dtype, device=a.device)
    if a.ndim == 0:
        return lerp(a, b, t)
    a_columns = a.reshape(a.shape[0], -1)
    b_columns = b.reshape(b.shape[0], -1)
    a_norm = a_columns.norm(dim=0)
    b_norm = b_columns.norm(dim=0)
    cosine = (a_columns * b_columns).sum(0) / (a_norm * b_norm).clamp_min(_ZERO_NORM**2)
    angle = torch.arccos(cosine.clamp(-1.0, 1.0))
    use_arc = (
        (angle > _PARALLEL_ANGLE)
        & (angle < torch.pi - _PARALLEL_ANGLE)
        & (a_norm > _ZERO_NORM)
        & (b_norm > _ZERO_NORM)
    )
    safe_sin = torch.where(use_arc, torch.sin(angle), torch.ones_like(angle))
    weight_a = torch.where(use_arc, torch.sin((1 - t) * angle) / safe_sin, 1 - t)
    weight_b = torch.where(use_arc, torch.sin(t * angle) / safe_sin, t)
    mixed = weight_a * a_columns + weight_b * b_columns
    return mixed.reshape(a.shape)


def morph_path(a: torch.Tensor, b: torch.Tensor, steps: int, mode: str = "slerp") -> torch.Tensor:
    """`steps` latents from a to b inclusive, shape (steps, *a.shape); mode "linear" or "slerp"."""
    _check_pair(a, b)
    if steps < 2:
        raise ValueError(f"a morph path needs at least 2 steps (both ends), got {steps}")
    if mode not in MORPH_MODES:
        raise ValueError(f"unknown morph mode {mode!r}; use one of {', '.join(MORPH_MODES)}")
    if not a.is_floating_point():
        a, b = a.float(), b.float()
    blend = lerp if mode == "linear" else slerp
    times = torch.linspace(0.0, 1.0, steps, dtype=a.dtype, device=a.device)
    path = torch.stack([blend(a, b, t) for t in times])
    # Exact ends whatever the rounding of the arc formula.
    path[0], path[-1] = a, b
    return path
