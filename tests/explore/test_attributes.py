"""Attribute measurement and direction maths, on signals and a synthetic decoder with known axes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import noise, sine

from helius.explore import (
    ATTRIBUTES,
    direction_from_examples,
    directions_from_samples,
    measure,
    move,
)

SAMPLE_RATE = 16000


def test_measure_orders_known_signals() -> None:
    low, high = sine(0.5, SAMPLE_RATE, 300.0), sine(0.5, SAMPLE_RATE, 3000.0)
    hiss = noise(0.5, SAMPLE_RATE, 0.3)
    assert set(measure(low, SAMPLE_RATE)) == set(ATTRIBUTES)
    assert measure(high, SAMPLE_RATE)["brightness"] > 5 * measure(low, SAMPLE_RATE)["brightness"]
    assert measure(hiss, SAMPLE_RATE)["noisiness"] > 10 * measure(low, SAMPLE_RATE)["noisiness"]
    quiet = measure(0.1 * low, SAMPLE_RATE)["loudness"]
    assert measure(low, SAMPLE_RATE)["loudness"] == pytest.approx(quiet + 20.0, abs=0.01)
    stereo = np.concatenate([low, low])
    assert measure(stereo, SAMPLE_RATE) == pytest.approx(measure(low[0], SAMPLE_RATE))


def test_direction_from_examples_points_from_negatives_to_positives() -> None:
    positive = torch.tensor([[2.0, 1.0, 0.0], [4.0, 1.0, 0.0]])
    negative = torch.tensor([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    direction = direction_from_examples(positive, negative)
    assert torch.allclose(direction, torch.tensor([1.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match="same mean"):
        direction_from_examples(negative, negative)
    with pytest.raises(ValueError, match="same D"):
        direction_from_examples(positive, torch.zeros(2, 4))


def test_move_shifts_vectors_and_every_frame_of_a_trajectory() -> None:
    direction = torch.tensor([0.0, 1.0])
    assert torch.equal(move(torch.tensor([1.0, 1.0]), direction, -2.0), torch.tensor([1.0, -1.0]))
    trajectory = torch.zeros(2, 5)
    moved = move(trajectory, direction, 0.5)
    assert torch.equal(moved[1], torch.full((5,), 0.5)) and torch.equal(moved[0], torch.zeros(5))


class _KnownAxesSession:
    """A stand-in decoder: z[0] sets the level, z[1] the pitch, z[2] the noise; z[3] is unused."""

    sample_rate = SAMPLE_RATE
    latent_dim = 4

    def sample_prior(self, n: int, seed: int = 0) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, generator=torch.Generator().manual_seed(seed))

    def decode(self, latent: torch.Tensor) -> np.ndarray:
        level, pitch, noisy, _ = (float(value) for value in latent)
        tone = sine(0.25, SAMPLE_RATE, 800.0 * 2.0**pitch)
        hiss = noise(0.25, SAMPLE_RATE, 1.0, seed=0)
        mix = tone + 0.01 * np.exp(noisy) * hiss
        return (10 ** (level * 6 / 20) * 0.1 * mix / np.abs(mix).max()).astype(np.float32)


def test_directions_from_samples_recover_the_known_axes() -> None:
    directions = directions_from_samples(_KnownAxesSession(), n=64, seed=0)
    assert set(directions) == set(ATTRIBUTES)
    for direction in directions.values():
        assert direction.shape == (4,) and direction.norm() == pytest.approx(1.0, abs=1e-5)
    assert directions["loudness"][0] > 0.95
    assert directions["noisiness"][2] > 0.95
    # Broadband noise raises the centroid too, so brightness leans on both pitch and noise,
    # but never on the level or the unused dimension.
    brightness = directions["brightness"]
    assert brightness[1] > 0.6 and brightness[2] > 0.3
    assert brightness[0].abs() < 0.2 and brightness[3].abs() < 0.2
    assert torch.equal(
        directions["loudness"], directions_from_samples(_KnownAxesSession())["loudness"]
    )


def test_an_attribute_that_never_changes_gets_no_direction() -> None:
    class Silent(_KnownAxesSession):
        def decode(self, latent: torch.Tensor) -> np.ndarray:
            return np.zeros((1, 4000), np.float32)

    directions = directions_from_samples(Silent(), n=8)
    assert all(torch.equal(direction, torch.zeros(4)) for direction in directions.values())
