"""Interpolation, random walks, variations and map blending: exact ends, norms, spreads, weights."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from helius.explore import (
    idw_blend,
    lerp,
    morph_path,
    nearest,
    random_walk,
    slerp,
    stationary_std,
    variations,
)


def _unit(*values: float) -> torch.Tensor:
    vector = torch.tensor(values, dtype=torch.float64)
    return vector / vector.norm()


# ---- interpolation ----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["linear", "slerp"])
def test_morph_path_has_both_ends_and_the_requested_length(mode: str) -> None:
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 8, generator=generator)
    path = morph_path(a, b, 7, mode)
    assert path.shape == (7, 8)
    assert torch.equal(path[0], a) and torch.equal(path[-1], b)


def test_lerp_is_the_chord() -> None:
    a, b = torch.tensor([0.0, 2.0]), torch.tensor([4.0, -2.0])
    assert torch.allclose(lerp(a, b, 0.25), torch.tensor([1.0, 1.0]))
    assert torch.allclose(morph_path(a, b, 5, "linear")[2], (a + b) / 2)


def test_slerp_keeps_unit_vectors_on_the_sphere_and_follows_the_arc() -> None:
    a, b = _unit(1, 0, 0), _unit(0, 1, 0)
    path = morph_path(a, b, 9, "slerp")
    assert torch.allclose(path.norm(dim=1), torch.ones(9, dtype=torch.float64), atol=1e-12)
    # Equal angular steps: the midpoint is at 45 degrees, unlike the shorter chord midpoint.
    assert torch.allclose(path[4], _unit(1, 1, 0), atol=1e-12)
    assert lerp(a, b, 0.5).norm() < 0.71


def test_slerp_keeps_the_norm_of_equal_norm_vectors() -> None:
    generator = torch.Generator().manual_seed(1)
    a, b = torch.randn(2, 16, generator=generator, dtype=torch.float64)
    b = b / b.norm() * a.norm()
    norms = morph_path(a, b, 11, "slerp").norm(dim=1)
    assert torch.allclose(norms, torch.full((11,), float(a.norm()), dtype=torch.float64))


@pytest.mark.parametrize(
    "a, b",
    [
        (_unit(1, 2, 3), _unit(1, 2, 3 + 1e-7)),  # nearly parallel: angle far below 1e-4 rad
        (torch.zeros(3, dtype=torch.float64), _unit(1, 2, 3)),  # no direction to rotate
        (_unit(1, 2, 3), -_unit(1, 2, 3)),  # opposite: the arc is undefined
    ],
)
def test_slerp_falls_back_to_lerp(a: torch.Tensor, b: torch.Tensor) -> None:
    for t in (0.0, 0.3, 0.5, 1.0):
        result = slerp(a, b, t)
        assert torch.isfinite(result).all()
        assert torch.allclose(result, lerp(a, b, t), atol=1e-12)


def test_trajectories_morph_frame_by_frame() -> None:
    # Column 0 turns a quarter circle; column 1 has parallel ends, so it falls back to lerp.
    a = torch.tensor([[1.0, 1.0], [0.0, 0.0]], dtype=torch.float64)
    b = torch.tensor([[0.0, 3.0], [1.0, 0.0]], dtype=torch.float64)
    path = morph_path(a, b, 3, "slerp")
    assert path.shape == (3, 2, 2)
    assert torch.allclose(path[1, :, 0], _unit(1, 1), atol=1e-12)
    assert torch.allclose(path[1, :, 1], torch.tensor([2.0, 0.0], dtype=torch.float64))
    for step in range(3):  # each column equals slerp of that column alone
        t = step / 2
        assert torch.allclose(path[step, :, 0], slerp(a[:, 0], b[:, 0], t))


def test_morph_path_rejects_bad_arguments() -> None:
    a = torch.zeros(4)
    with pytest.raises(ValueError, match="2 steps"):
        morph_path(a, a, 1)
    with pytest.raises(ValueError, match="mode"):
        morph_path(a, a, 3, "cubic")
    with pytest.raises(ValueError, match="shapes"):
        morph_path(a, torch.zeros(5), 3)


# ---- random walks -----------------------------------------------------------------------


def test_walk_is_deterministic_under_its_seed_and_leaves_global_rng_alone() -> None:
    start = torch.zeros(8)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    first = random_walk(start, 50, seed=7)
    assert torch.equal(torch.rand(1), before)  # the walk has its own generator
    assert torch.equal(first, random_walk(start, 50, seed=7))
    assert not torch.equal(first, random_walk(start, 50, seed=8))
    assert first.shape == (50, 8) and first.dtype == torch.float32


def test_walk_is_smooth_with_momentum() -> None:
    start = torch.zeros(16)
    smooth = random_walk(start, 400, momentum=0.9, temperature=3.0, seed=0)
    jumpy = random_walk(start, 400, momentum=0.0, temperature=3.0 * 0.1, seed=0)

    # Successive steps point the same way with momentum, at random without.
    def step_correlation(path: torch.Tensor) -> float:
        steps = path.diff(dim=0)
        return float(torch.nn.functional.cosine_similarity(steps[1:], steps[:-1]).mean())

    assert step_correlation(smooth) > 0.7
    assert abs(step_correlation(jumpy)) < 0.3


def test_walk_spread_settles_where_theory_says_and_stays_bounded() -> None:
    dim = 16
    start = torch.randn(dim, generator=torch.Generator().manual_seed(0))
    # Temperature chosen so the walk should fill N(0, I): norms near sqrt(D).
    temperature = 1.0 / stationary_std(temperature=1.0)
    path = random_walk(start, 1000, temperature=temperature, seed=3)
    norms = path.norm(dim=1)
    assert abs(float(norms.mean()) / math.sqrt(dim) - 1.0) < 0.2
    assert float(norms[-200:].mean()) < 1.5 * math.sqrt(dim)  # not diverging
    # The defaults stay well inside the prior.
    default_norms = random_walk(start, 1000, seed=3).norm(dim=1)
    expected = stationary_std() * math.sqrt(dim)
    assert abs(float(default_norms[200:].mean()) / expected - 1.0) < 0.3
    assert float(default_norms.max()) < math.sqrt(dim) * 1.5


def test_walk_without_pull_drifts_away() -> None:
    start = torch.zeros(16)
    pulled = random_walk(start, 1000, temperature=5.0, seed=1).norm(dim=1)[-100:].mean()
    free = random_walk(start, 1000, temperature=5.0, pull=0.0, seed=1).norm(dim=1)[-100:].mean()
    assert free > 3 * pulled


# ---- variations -------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(8,), (4, 10)])
def test_variations_spread_by_sigma_around_the_center(shape: tuple[int, ...]) -> None:
    center = torch.arange(math.prod(shape), dtype=torch.float32).reshape(shape)
    result = variations(center, 500, sigma=0.3, seed=2)
    assert result.shape == (500, *shape)
    deviations = result - center
    assert abs(float(deviations.std()) - 0.3) < 0.02
    assert float(deviations.mean().abs()) < 0.02
    assert torch.equal(result, variations(center, 500, sigma=0.3, seed=2))
    assert torch.equal(variations(center, 3, sigma=0.0), center.expand(3, *shape))


# ---- blending on the map ----------------------------------------------------------------


def test_idw_query_on_a_point_returns_its_latent() -> None:
    generator = torch.Generator().manual_seed(0)
    points = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, -0.5], [0.5, 0.5]])
    latents = torch.randn(5, 6, generator=generator)
    for index in range(5):
        blended = idw_blend(points, latents, points[index])
        assert torch.allclose(blended, latents[index], atol=1e-4)
        assert nearest(points, points[index] + 0.01) == index


def test_idw_equidistant_neighbours_give_their_mean() -> None:
    points = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0], [5.0, 5.0]])
    latents = torch.arange(5 * 3, dtype=torch.float32).reshape(5, 3)
    blended = idw_blend(points, latents, np.zeros(2), k=4)
    assert torch.allclose(blended, latents[:4].mean(0))
    # k=5 includes the far point with a small weight.
    weight_far = (1 / 50) / (4 / 1 + 1 / 50)
    expected = (1 - weight_far) * latents[:4].mean(0) + weight_far * latents[4]
    assert torch.allclose(idw_blend(points, latents, np.zeros(2), k=5), expected, atol=1e-5)


def test_idw_blends_trajectories_and_accepts_tensors() -> None:
    points = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    latents = torch.stack([torch.zeros(3, 4), torch.ones(3, 4)])
    blended = idw_blend(points, latents, torch.tensor([0.5, 0.0]), k=2)
    assert blended.shape == (3, 4)
    assert torch.allclose(blended, torch.full((3, 4), 0.5))
    assert nearest(points, torch.tensor([0.9, 0.3])) == 1
