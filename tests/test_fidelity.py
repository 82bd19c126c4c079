"""Follow metrics and latent sensitivity: values known by construction, and the static
baseline that a collapsed model resembles scoring near zero."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import tiny_config
from torch import nn

from helius import fidelity
from helius.models.base import VAEOutput
from helius.train.vae_task import COLLAPSE_WARNING_AFTER_STEPS, VAETask

RATE = 16000


def enveloped_tone(seconds: float = 2.0, seed: int = 0) -> torch.Tensor:
    """A tone whose level swings by ~30 dB four times and whose pitch moves, plus faint noise."""
    t = torch.arange(int(seconds * RATE)) / RATE
    envelope = 0.02 + 0.5 * (0.5 + 0.5 * torch.sin(2 * math.pi * 2 * t)) ** 2
    pitch = 300 + 500 * t / seconds
    phase = 2 * math.pi * torch.cumsum(pitch, 0) / RATE
    noise = 0.001 * torch.randn(t.shape, generator=torch.Generator().manual_seed(seed))
    return envelope * torch.sin(phase) + noise


def test_loudness_correlation_of_copies_gains_and_opposites() -> None:
    x = enveloped_tone()
    assert fidelity.loudness_envelope_correlation(x, x) == pytest.approx(1.0, abs=1e-6)
    # A constant gain shifts every frame's dB by the same amount: still a perfect follower.
    assert fidelity.loudness_envelope_correlation(0.3 * x, x) == pytest.approx(1.0, abs=1e-5)
    assert fidelity.loudness_envelope_correlation(x.flip(0), x) < -0.5


def test_static_baseline_follows_nothing_but_matches_level_and_spectrum() -> None:
    x = enveloped_tone()
    static = fidelity.static_spectrum_baseline(x)
    assert static.shape == x.shape
    assert 10 * math.log10(float(static.pow(2).mean() / x.pow(2).mean())) == pytest.approx(
        0.0, abs=0.1
    )
    assert abs(float(fidelity.loudness_envelope_correlation(static, x))) < 0.3
    assert abs(float(fidelity.spectral_change_correlation(static, x, RATE))) < 0.15
    assert float(fidelity.spectral_change_correlation(x, x, RATE)) == pytest.approx(1.0, abs=1e-5)


def test_spectral_change_correlation_is_zero_for_a_constant_spectrum() -> None:
    x = enveloped_tone()
    t = torch.arange(x.shape[0]) / RATE
    drone = 0.1 * torch.sin(2 * math.pi * 440 * t)  # one unchanging spectrum
    assert abs(float(fidelity.spectral_change_correlation(drone, x, RATE))) < 0.1


def test_dac_mel_distance_of_a_gain_is_its_log10() -> None:
    noise = 0.2 * torch.randn(1, RATE, generator=torch.Generator().manual_seed(1))
    assert float(fidelity.dac_mel_distance(noise, noise, RATE)) == 0.0
    # Every mel magnitude scales by the gain, and every bin stays above the 1e-5 floor: each
    # of the three resolutions adds log10(2).
    assert float(fidelity.dac_mel_distance(2.0 * noise, noise, RATE)) == pytest.approx(
        3 * math.log10(2.0), rel=1e-4
    )


def test_latent_sensitivity_tells_a_decoder_that_uses_z_from_one_that_ignores_it() -> None:
    z = torch.randn(2, 4, 64, generator=torch.Generator().manual_seed(2))
    uses = fidelity.latent_sensitivity_db(lambda latent: latent, z)
    # Zeroing z removes the whole output: a change as large as the output itself (0 dB).
    assert uses["sensitivity_zero_db"] == pytest.approx(0.0, abs=1e-6)
    # Shuffling i.i.d. frames: the change has twice the output's energy (about +3 dB).
    assert uses["sensitivity_shuffle_db"] == pytest.approx(10 * math.log10(2), abs=0.6)
    base = torch.sin(torch.arange(64.0))
    ignores = fidelity.latent_sensitivity_db(lambda latent: base + 1e-4 * latent, z)
    assert ignores["sensitivity_zero_db"] < -60
    assert ignores["sensitivity_zero_db"] < fidelity.COLLAPSE_SENSITIVITY_DB


class AverageSound(nn.Module):
    """A collapsed 'VAE': whatever comes in, the same steady noise goes out."""

    def __init__(self) -> None:
        super().__init__()
        self.level = nn.Parameter(torch.tensor(0.05))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        generator = torch.Generator().manual_seed(3)
        noise = torch.randn(z.shape[-1] * 64, generator=generator)
        return (self.level * noise).expand(z.shape[0], 1, -1).clone()

    def forward(self, x: torch.Tensor, step: int | None = None) -> VAEOutput:
        mu = x.reshape(x.shape[0], 1, -1, 64).mean(-1) * 10
        return VAEOutput(audio=self.decode(mu), mu=mu, logvar=torch.zeros_like(mu), z=mu)


def test_validation_reports_follow_metrics_and_warns_about_collapse(tmp_path) -> None:
    task = VAETask(tiny_config(tmp_path))
    batch = enveloped_tone(4.096).reshape(1, 1, -1).repeat(2, 1, 1)
    validation = task.validate(AverageSound(), iter([batch]))
    result = validation.metrics
    assert result["loudness_corr"] < 0.3
    assert result["sensitivity_zero_db"] <= -99.0
    assert result["ignores_latent"] is True
    assert task.validation_warning(validation, COLLAPSE_WARNING_AFTER_STEPS - 1) is None
    message = task.validation_warning(validation, COLLAPSE_WARNING_AFTER_STEPS)
    assert message is not None and "ignores its latent" in message


def test_latent_sensitivity_does_not_count_fresh_noise_as_use_of_the_latent() -> None:
    z = torch.randn(1, 4, 32, generator=torch.Generator().manual_seed(4))

    def noisy_decoder_ignoring_z(latent: torch.Tensor) -> torch.Tensor:
        return torch.randn(1, 1, 2048) + 0.0 * latent.sum()  # a noise branch and nothing else

    assert fidelity.latent_sensitivity_db(noisy_decoder_ignoring_z, z)["sensitivity_zero_db"] < -90


def test_follow_report_puts_the_model_next_to_the_static_baseline_and_says_how_good() -> None:
    x = enveloped_tone().reshape(1, -1)
    delay = 37
    late_copy = torch.nn.functional.pad(x, (delay, 0))[..., : x.shape[-1]]
    faithful = fidelity.follow_report(late_copy, x, RATE, delay_samples=delay)
    assert faithful["rows"]["model"]["loudness_corr"] == pytest.approx(1.0, abs=1e-6)
    assert faithful["rows"]["model"]["mel_distance"] == pytest.approx(0.0, abs=1e-6)
    assert abs(faithful["rows"]["static baseline"]["loudness_corr"]) < 0.3
    assert "follows its input closely" in faithful["verdict"]
    static = fidelity.static_spectrum_baseline(x, seed=5)
    collapsed = fidelity.follow_report(static, x, RATE)
    assert "does not follow its input" in collapsed["verdict"]


def test_mel_distance_gradient_is_finite_where_the_output_is_silent():
    """The spectral wave VAE's output starts with exact zeros: with a plain sqrt the mel
    term's gradient there was 0 * inf, and the first training step with mel_weight > 0 NaN."""
    target = torch.randn(1, 1, 8000, generator=torch.Generator().manual_seed(0)) * 0.1
    pred = target.clone()
    pred[..., :3000] = 0.0
    pred.requires_grad_(True)
    fidelity.dac_mel_distance(pred, target, 16000).backward()
    assert torch.isfinite(pred.grad).all()
    assert pred.grad[..., 3000:].abs().sum() > 0  # the audible part still gets a gradient
