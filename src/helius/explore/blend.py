"""Blending on the sound map: inverse-distance weighting of nearby points, and snapping."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["idw_blend", "idw_weights", "nearest"]


def _as_points(points, query) -> tuple[torch.Tensor, torch.Tensor]:
    points = torch.as_tensor(np.asarray(points, dtype=np.float64))
    query = torch.as_tensor(np.asarray(query, dtype=np.float64))
    if points.ndim != 2 or points.shape[0] == 0 or query.shape != (points.shape[1],):
        raise ValueError(
            f"need points (N >= 1, 2) and a query (2,), got {tuple(points.shape)} and "
            f"{tuple(query.shape)}"
        )
    return points, query


def idw_weights(points, query, k: int = 4, eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """(indices, weights) of the k nearest points: weights 1 / (d^2 + eps), summing to 1."""
    points, query = _as_points(points, query)
    squared = ((points - query) ** 2).sum(-1)
    k = max(1, min(k, points.shape[0]))
    nearest_squared, indices = torch.topk(squared, k, largest=False)
    weights = 1.0 / (nearest_squared + eps)
    return indices, weights / weights.sum()


def idw_blend(points, latents: torch.Tensor, query, k: int = 4, eps: float = 1e-6) -> torch.Tensor:
    """The latent under `query` (2,): the k nearest map points' latents, inverse-distance weighted.

    points (N, 2) are map positions (array or tensor), latents (N, ...) what they stand for.
    A query on a point returns (almost exactly) that point's latent; a query equidistant from
    its k neighbours returns their mean.
    """
    latents = torch.as_tensor(latents)
    if latents.shape[0] != len(points):
        raise ValueError(f"{len(points)} map points but {latents.shape[0]} latents")
    indices, weights = idw_weights(points, query, k, eps)
    chosen = latents[indices]
    weights = weights.to(chosen.dtype if chosen.is_floating_point() else torch.float32)
    return torch.tensordot(weights, chosen.to(weights.dtype), dims=1)


def nearest(points, query) -> int:
    """Index of the map point closest to `query` (the Snap button)."""
    points, query = _as_points(points, query)
    return int(((points - query) ** 2).sum(-1).argmin())
