"""Sampling from the mel VAE (`helius.harmonic.sampling`): slerp's closed-form values, that an
interpolation starts and ends at the two patches' decoded means, and that generation is fixed
by its seed and gives clips of a patch's length."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from helius.errors import ConfigError
from helius.harmonic.griffin_lim import GriffinLim
from helius.harmonic.mel_vae import MelVAE
from helius.harmonic.sampling import (
    encode_audio,
    generate,
    interpolate,
    invert,
    prior_latents,
    slerp,
)
from helius.nn.mel import LogMel

RATE = 8000


@pytest.fixture(scope="module")
def inverter(model: MelVAE) -> GriffinLim:
    return GriffinLim(model.mel, iterations=4, refine_iterations=10, seed=3)


def tone(hz: float, seconds: float = 0.25) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)[None]


def test_slerp_of_orthogonal_unit_vectors_follows_the_quarter_circle() -> None:
    a, b = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    np.testing.assert_allclose(slerp(a, b, 0.5), (a + b) / math.sqrt(2), atol=1e-12)
    # The angle is pi/2: t of the way along is the point at angle t pi/2 from a.
    for t in (0.1, 1 / 3, 0.8):
        expected = math.cos(t * math.pi / 2) * a + math.sin(t * math.pi / 2) * b
        np.testing.assert_allclose(slerp(a, b, t), expected, atol=1e-12)
    np.testing.assert_array_equal(slerp(a, b, 0.0), a)
    np.testing.assert_array_equal(slerp(a, b, 1.0), b)


def test_slerp_keeps_unit_and_equal_norms_where_a_straight_line_does_not() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=8), rng.normal(size=8)
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    for t in np.linspace(0, 1, 11):
        assert np.linalg.norm(slerp(a, b, t)) == pytest.approx(1.0, abs=1e-12)
        assert np.linalg.norm(slerp(3 * a, 3 * b, t)) == pytest.approx(3.0, abs=1e-12)
    assert np.linalg.norm((a + b) / 2) < 0.95  # the chord cuts inside the sphere
    # Same direction, different norms: the linear blend (no arc to follow).
    np.testing.assert_allclose(slerp(a, 2 * a, 0.5), 1.5 * a, atol=1e-12)
    nearly = a + 1e-7 * b
    assert np.isfinite(slerp(a, nearly, 0.5)).all()
    np.testing.assert_allclose(slerp(a, nearly, 0.5), (a + nearly) / 2, atol=1e-12)


def test_slerp_keeps_the_input_type() -> None:
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    mixed = slerp(a, b, 0.5)
    assert isinstance(mixed, torch.Tensor) and mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, torch.tensor([1.0, 1.0]) / math.sqrt(2))
    assert slerp(np.float32([1, 0]), np.float32([0, 1]), 0.5).dtype == np.float32


def test_interpolation_runs_from_the_decoded_mean_of_a_to_that_of_b(model, inverter) -> None:
    audio_a, audio_b = tone(300.0), tone(1200.0)
    clips = interpolate(model, audio_a, audio_b, 5, inverter, method="slerp")
    assert len(clips) == 5
    mu_a, mu_b = encode_audio(model, audio_a), encode_audio(model, audio_b)
    with torch.no_grad():
        mu, _ = model.encode(model.features(torch.from_numpy(audio_a)[None]))
        end_a = inverter(model.decode(mu))[0].numpy()
        end_b = invert(model.decode(mu_b[None]), inverter)[0]
    torch.testing.assert_close(mu_a, mu[0])
    np.testing.assert_allclose(clips[0], end_a, atol=1e-5)
    np.testing.assert_allclose(clips[-1], end_b, atol=1e-5)
    assert not np.allclose(clips[0], clips[-1], atol=1e-3)
    linear = interpolate(model, audio_a, audio_b, 3, inverter, method="linear")
    with torch.no_grad():
        middle = invert(model.decode(((mu_a + mu_b) / 2)[None]), inverter)[0]
    np.testing.assert_allclose(linear[1], middle, atol=1e-5)
    np.testing.assert_allclose(linear[0], clips[0], atol=1e-5)
    with pytest.raises(ValueError, match="interpolation"):
        interpolate(model, audio_a, audio_b, 3, inverter, method="cubic")  # type: ignore[arg-type]


def test_generate_is_fixed_by_its_seed_and_gives_patch_length_clips(model, inverter) -> None:
    clips = generate(model, 3, inverter, seed=7)
    assert len(clips) == 3
    length = (model.frames - 1) * model.config.hop_length  # the frames' audio (MelInverter)
    assert all(clip.shape == (1, length) and clip.dtype == np.float32 for clip in clips)
    assert all(np.isfinite(clip).all() for clip in clips)
    again = generate(model, 3, inverter, seed=7)
    for first, second in zip(clips, again, strict=True):
        np.testing.assert_array_equal(first, second)
    other = generate(model, 3, inverter, seed=8)
    assert not np.allclose(clips[0], other[0])
    # Temperature scales the draws; at 0 every clip is the decoded origin.
    torch.testing.assert_close(
        prior_latents(model, 3, seed=7, temperature=0.5), 0.5 * prior_latents(model, 3, seed=7)
    )
    flat = generate(model, 2, inverter, seed=7, temperature=0.0)
    np.testing.assert_array_equal(flat[0], flat[1])
    default = generate(model, 1, seed=7)  # Griffin-Lim over the model's own mel features
    assert default[0].shape == (1, length)


def test_an_inverter_for_other_mel_features_is_refused(model) -> None:
    other = GriffinLim(LogMel(RATE, n_fft=256, hop_length=64, n_mels=24))
    with pytest.raises(ConfigError, match="mel features"):
        generate(model, 1, other, seed=0)
    with pytest.raises(ValueError, match="n >= 1"):
        generate(model, 0, seed=0)
