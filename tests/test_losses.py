"""Losses: known signals and posteriors give the expected numbers and gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from helius.config import BetaConfig, LossConfig
from helius.errors import ConfigError
from helius.losses import (
    CLIP_FFT_SIZES,
    WAVE_FFT_SIZES,
    beta_at,
    kl_loss,
    kl_per_dim,
    pre_emphasis,
    reconstruction_loss,
    skip_consistency_loss,
)
from helius.metrics import mrstft_distance

SAMPLE_RATE = 16000
N_SAMPLES = 4096
SMALL_FFTS = (1024, 256, 64)


@pytest.fixture(autouse=True)
def _one_thread():
    # Small STFTs gain nothing from intra-op threads; on a busy 2-core machine they lose.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _noise(seed: int, shape: tuple[int, ...] = (2, 1, N_SAMPLES), rms: float = 0.1) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy((rng.standard_normal(shape) * rms).astype(np.float32))


def _sine(freq_hz: float, amplitude: float) -> torch.Tensor:
    t = torch.arange(N_SAMPLES, dtype=torch.float32) / SAMPLE_RATE
    return (amplitude * torch.sin(2 * math.pi * freq_hz * t)).view(1, 1, -1)


def test_fft_size_defaults() -> None:
    assert WAVE_FFT_SIZES == (2048, 1024, 512, 256, 128)
    assert CLIP_FFT_SIZES == (4096, 2048, 1024, 512, 256, 128)


def test_identical_signals_cost_nothing() -> None:
    x = _noise(0)
    config = LossConfig(phase_weight=1.0, waveform_l1_weight=1.0, pre_emphasis=0.97)
    total, parts = reconstruction_loss(x, x.clone(), config, SMALL_FFTS)
    assert set(parts) == {"stft", "phase", "wave_l1"}
    assert total.item() == pytest.approx(0.0, abs=1e-6)
    assert parts["stft"].item() == pytest.approx(0.0, abs=1e-6)


def test_plain_stft_part_is_the_mrstft_metric_and_skips_long_ffts() -> None:
    pred, target = _noise(1), _noise(2)
    total, parts = reconstruction_loss(pred, target, LossConfig(), CLIP_FFT_SIZES)
    assert set(parts) == {"stft"}  # optional terms are off by default
    # 4096 fits a 4096-sample signal; a configured 8192 would be skipped, not padded.
    # The same log floor on both sides: the loss's `log_epsilon` is the metric's `eps`.
    eps = LossConfig().log_epsilon
    expected = mrstft_distance(pred, target, CLIP_FFT_SIZES, eps=eps)
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    config = LossConfig(fft_sizes=[8192, 256])
    skipped, _ = reconstruction_loss(pred, target, config, CLIP_FFT_SIZES)
    assert skipped.item() == pytest.approx(
        mrstft_distance(pred, target, (256,), eps=eps).item(), rel=1e-6
    )


def test_pre_emphasis_filter_values() -> None:
    x = torch.tensor([1.0, 2.0, 4.0])
    assert torch.allclose(pre_emphasis(x, 0.5), torch.tensor([1.0, 1.5, 3.0]))


def test_pre_emphasis_weighs_high_frequency_errors_more() -> None:
    target = _noise(3, (1, 1, N_SAMPLES))
    low_error = target + _sine(100.0, 0.05)
    high_error = target + _sine(6000.0, 0.05)

    def high_to_low_ratio(config: LossConfig) -> float:
        high, _ = reconstruction_loss(high_error, target, config, SMALL_FFTS)
        low, _ = reconstruction_loss(low_error, target, config, SMALL_FFTS)
        return high.item() / low.item()

    plain = high_to_low_ratio(LossConfig())
    emphasised = high_to_low_ratio(LossConfig(pre_emphasis=0.97))
    assert emphasised > 1.5 * plain


def test_phase_term_sees_a_polarity_flip_that_magnitudes_miss() -> None:
    target = _noise(4)
    config = LossConfig(phase_weight=0.5)
    total, parts = reconstruction_loss(-target, target, config, SMALL_FFTS)
    assert parts["stft"].item() == pytest.approx(0.0, abs=1e-6)
    # |Re(-X) - Re(X)| + |Im(-X) - Im(X)| = 2 (|Re X| + |Im X|), over mean |X|: about 2 x 4/pi.
    assert parts["phase"].item() == pytest.approx(0.5 * 2 * 4 / math.pi, rel=0.1)
    assert total.item() == pytest.approx(parts["phase"].item(), rel=1e-6)


def test_phase_term_is_level_independent() -> None:
    pred, target = _noise(5), _noise(6)
    config = LossConfig(phase_weight=1.0)
    _, quiet = reconstruction_loss(pred, target, config, SMALL_FFTS)
    _, loud = reconstruction_loss(10 * pred, 10 * target, config, SMALL_FFTS)
    assert loud["phase"].item() == pytest.approx(quiet["phase"].item(), rel=1e-4)


def test_waveform_l1_exact_value() -> None:
    target = torch.zeros(1, 1, 512)
    pred = torch.full((1, 1, 512), 0.5)
    pred[..., ::2] = -0.25  # |error| alternates 0.5 and 0.25: mean 0.375
    config = LossConfig(waveform_l1_weight=2.0)
    _, parts = reconstruction_loss(pred, target, config, (128,))
    assert parts["wave_l1"].item() == pytest.approx(2.0 * 0.375)


def test_loudness_term_is_the_frame_level_gap_in_tens_of_db() -> None:
    target = _noise(9)
    config = LossConfig(loudness_weight=2.0)
    _, parts = reconstruction_loss(0.5 * target, target, config, SMALL_FFTS)
    # Half the amplitude is 20 log10(2) = 6.02 dB quieter in every frame: 0.602 units, x2.
    assert parts["loudness"].item() == pytest.approx(2.0 * 20 * math.log10(2) / 10, rel=1e-4)
    _, same = reconstruction_loss(target, target, config, SMALL_FFTS)
    assert same["loudness"].item() == pytest.approx(0.0, abs=1e-6)


def test_loudness_term_pulls_a_quiet_output_up_and_ignores_digital_silence() -> None:
    target = _noise(10)
    target[..., : N_SAMPLES // 2] = 0.0  # the first half is silence
    gain = torch.tensor(0.25, requires_grad=True)
    config = LossConfig(loudness_weight=1.0)
    _, parts = reconstruction_loss(gain * target, target, config, SMALL_FFTS)
    parts["loudness"].backward()
    assert gain.grad is not None and gain.grad.item() < 0  # a larger gain lowers the term
    # Hiss at -80 dB where the input is silent sits under the -70 dB floor and costs under
    # 0.1 dB (at the metric's -100 dB floor it would cost 17 dB in the frames that hold it).
    pred = target.clone()
    pred[..., : N_SAMPLES // 4] = 1e-3 * _noise(11)[..., : N_SAMPLES // 4]  # -80 dB hiss
    _, silent = reconstruction_loss(pred, target, config, SMALL_FFTS)
    assert silent["loudness"].item() < 0.01


def test_reconstruction_loss_is_differentiable() -> None:
    pred = _noise(7).requires_grad_(True)
    config = LossConfig(phase_weight=1.0, waveform_l1_weight=1.0, pre_emphasis=0.9)
    total, _ = reconstruction_loss(pred, _noise(8), config, SMALL_FFTS)
    total.backward()
    assert pred.grad is not None
    assert torch.isfinite(pred.grad).all()
    assert pred.grad.abs().sum() > 0


def test_kl_of_the_prior_is_zero() -> None:
    assert torch.equal(kl_per_dim(torch.zeros(4, 3), torch.zeros(4, 3)), torch.zeros(3))


def test_kl_matches_closed_form_and_averages_batch_and_frames() -> None:
    mu = torch.tensor([[1.0, 0.0], [3.0, 0.0]])
    logvar = torch.tensor([[0.0, math.log(4.0)], [0.0, math.log(4.0)]])
    # dim 0: 0.5 mu^2 -> mean(0.5, 4.5) = 2.5; dim 1: 0.5 (4 - 1 - ln 4).
    expected = torch.tensor([2.5, 0.5 * (3.0 - math.log(4.0))])
    assert torch.allclose(kl_per_dim(mu, logvar), expected)
    frames = mu.unsqueeze(-1).expand(2, 2, 5)  # same posterior at every frame
    assert torch.allclose(kl_per_dim(frames, logvar.unsqueeze(-1).expand(2, 2, 5)), expected)


def test_free_bits_stop_gradient_below_the_threshold_only() -> None:
    # Per-dim KL = 0.5 mu^2: dims 0, 1 below 0.25 nats, dim 2 above it.
    mu = torch.tensor([[0.1, 0.5, 2.0]], requires_grad=True)
    logvar = torch.zeros(1, 3, requires_grad=True)
    penalised, per_dim = kl_loss(mu, logvar, free_bits=0.25)
    assert per_dim.requires_grad is False
    assert torch.allclose(per_dim, torch.tensor([0.005, 0.125, 2.0]))
    assert penalised.item() == pytest.approx(0.25 + 0.25 + 2.0)
    penalised.backward()
    assert torch.equal(mu.grad[0, :2], torch.zeros(2))
    assert mu.grad[0, 2].item() == pytest.approx(2.0)  # d(0.5 mu^2)/dmu
    without, _ = kl_loss(mu.detach(), logvar.detach(), free_bits=0.0)
    assert without.item() == pytest.approx(2.13)


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("constant", {0: 0.1, 500: 0.1, 1000: 0.1, 5000: 0.1}),
        ("linear", {0: 0.0, 500: 0.05, 1000: 0.1, 5000: 0.1}),
        # cycle of 400 steps: ramp over 200, hold 200, restart.
        ("cyclical", {0: 0.0, 100: 0.05, 200: 0.1, 399: 0.1, 400: 0.0, 500: 0.05}),
        ("log", {0: 1e-4, 500: math.sqrt(1e-4 * 0.1), 1000: 0.1, 5000: 0.1}),
    ],
)
def test_beta_schedules(schedule: str, expected: dict[int, float]) -> None:
    config = BetaConfig(
        schedule=schedule, beta=0.1, beta_start=1e-4, warmup_steps=1000, cycle_steps=400
    )
    for step, beta in expected.items():
        assert beta_at(step, config) == pytest.approx(beta, rel=1e-9, abs=1e-12), step


def test_log_schedule_needs_a_positive_start() -> None:
    with pytest.raises(ConfigError, match="beta_start"):
        beta_at(10, BetaConfig(schedule="log", beta_start=0.0))


def test_skip_consistency_zero_for_identical_positive_otherwise() -> None:
    real = [_noise(9, (2, 4, 16)), _noise(10, (2, 8, 4))]
    assert skip_consistency_loss([r.clone() for r in real], real).item() == pytest.approx(
        0.0, abs=1e-6
    )
    # Scaling keeps the direction: only the MSE part remains.
    scaled = [2 * r for r in real]
    mse = sum(r.pow(2).mean() for r in real) / 2
    assert skip_consistency_loss(scaled, real).item() == pytest.approx(mse.item(), rel=1e-5)
    # Opposite direction: cosine -1 costs 2 on top of the MSE.
    flipped = [-r for r in real]
    expected = sum((2 * r).pow(2).mean() + 2.0 for r in real) / 2
    assert skip_consistency_loss(flipped, real).item() == pytest.approx(expected.item(), rel=1e-5)


def test_skip_consistency_gradient_reaches_generated_not_real() -> None:
    real = [_noise(11, (2, 4, 16)).requires_grad_(True)]
    generated = [_noise(12, (2, 4, 16)).requires_grad_(True)]
    skip_consistency_loss(generated, real).backward()
    assert real[0].grad is None
    assert generated[0].grad is not None
    assert generated[0].grad.abs().sum() > 0


def test_skip_consistency_rejects_mismatched_levels() -> None:
    with pytest.raises(ValueError, match="level 0"):
        skip_consistency_loss([torch.zeros(1, 2, 3)], [torch.zeros(1, 2, 4)])
    with pytest.raises(ValueError):
        skip_consistency_loss([], [])
