"""Audio metrics: known gains, delays, SNRs and noise colours give the expected numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.signal
import torch

from helius.metrics import (
    SI_SDR_FLOOR_DB,
    loudness_difference_db,
    mel_distance,
    mrstft_distance,
    real_fft,
    rms_db,
    si_sdr,
)

SAMPLE_RATE = 16000
N_SAMPLES = 8192
_MAX_DELAY = 16


def _white(seed: int, n: int = N_SAMPLES, rms: float = 0.1) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy((rng.standard_normal(n) * rms).astype(np.float32))


def _pink(seed: int, n: int = N_SAMPLES, rms: float = 0.1) -> torch.Tensor:
    """White noise shaped by 1/sqrt(f) in the FFT domain, scaled to the given RMS."""
    rng = np.random.default_rng(seed)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.arange(spectrum.size, dtype=np.float64)
    freqs[0] = 1.0  # 1/sqrt(0) is undefined; DC gets the lowest bin's gain.
    shaped = np.fft.irfft(spectrum / np.sqrt(freqs), n=n)
    shaped *= rms / np.sqrt(np.mean(shaped**2))
    return torch.from_numpy(shaped.astype(np.float32))


def _lowpassed(seed: int, n: int) -> np.ndarray:
    """Noise whose autocorrelation decays over tens of samples, so delay degrades gradually."""
    rng = np.random.default_rng(seed)
    return scipy.signal.lfilter([0.05], [1.0, -0.95], rng.standard_normal(n)).astype(np.float32)


def _mel(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return mel_distance(pred, target, SAMPLE_RATE)


def _delayed(signal: np.ndarray, delay: int) -> torch.Tensor:
    """N_SAMPLES of signal, delayed by delay samples relative to the delay=0 window."""
    start = _MAX_DELAY - delay
    return torch.from_numpy(signal[start : start + N_SAMPLES].copy())


def test_identical_signals_give_zero_distances_and_high_si_sdr() -> None:
    x = _white(0)
    assert mrstft_distance(x, x.clone()).item() == pytest.approx(0.0, abs=1e-6)
    assert _mel(x, x.clone()).item() == pytest.approx(0.0, abs=1e-6)
    assert loudness_difference_db(x, x.clone()).item() == pytest.approx(0.0, abs=1e-6)
    assert si_sdr(x, x.clone()).item() > 80.0


def test_gain_shifts_loudness_and_spectrum_but_not_si_sdr() -> None:
    x = _white(1)
    assert loudness_difference_db(0.5 * x, x).item() == pytest.approx(
        20 * math.log10(0.5), abs=1e-3
    )
    assert loudness_difference_db(x, 0.5 * x).item() == pytest.approx(
        -20 * math.log10(0.5), abs=1e-3
    )
    assert si_sdr(0.5 * x, x).item() > 80.0
    half = mrstft_distance(0.5 * x, x).item()
    quarter = mrstft_distance(0.25 * x, x).item()
    assert 0.0 < half < quarter


def _burst(seed: int) -> np.ndarray:
    """A decaying low-passed noise burst, long enough to cut delayed windows from."""
    n = N_SAMPLES + _MAX_DELAY
    return (_lowpassed(seed, n) * np.exp(-np.arange(n) / 4000.0)).astype(np.float32)


@pytest.mark.parametrize("delay", [1, 10])
def test_short_delay_is_far_closer_than_independent_noise(delay: int) -> None:
    burst = _burst(2)
    reference = _delayed(burst, 0)
    shifted = _delayed(burst, delay)
    independent = _delayed(_burst(3), 0)
    for distance in (mrstft_distance, _mel):
        near = distance(shifted, reference).item()
        far = distance(independent, reference).item()
        assert 0.0 < near < 0.3 * far


def test_si_sdr_drops_with_delay() -> None:
    signal = _lowpassed(4, N_SAMPLES + _MAX_DELAY)
    reference = _delayed(signal, 0)
    scores = [si_sdr(_delayed(signal, d), reference).item() for d in (0, 1, 10)]
    assert scores[0] > 80.0
    assert scores[0] > scores[1] > scores[2]


def test_white_and_pink_are_farther_apart_than_two_whites() -> None:
    white_a, white_b, pink = _white(5), _white(6), _pink(7)
    for distance in (mrstft_distance, _mel):
        assert distance(white_a, pink).item() > distance(white_a, white_b).item()


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 20.0])
def test_si_sdr_recovers_a_known_snr(snr_db: float) -> None:
    target, noise = _white(8, n=16384), _white(9, n=16384)
    noise = noise * (10 ** (-snr_db / 20) * target.norm() / noise.norm())
    assert si_sdr(target + noise, target).item() == pytest.approx(snr_db, abs=0.5)


def test_shapes_are_accepted_and_batch_means_match_per_signal_values() -> None:
    batch, channels = 2, 3
    target = torch.stack([_white(10 + i, n=2048) for i in range(batch * channels)])
    pred = 0.7 * target + 0.3 * torch.stack([_white(20 + i, n=2048) for i in range(6)])
    metrics = (mrstft_distance, _mel, si_sdr, loudness_difference_db)
    for metric in metrics:
        per_signal = torch.stack([metric(p, t) for p, t in zip(pred, target, strict=True)])
        flat = metric(pred, target)
        nested = metric(pred.reshape(batch, channels, -1), target.reshape(batch, channels, -1))
        for value in (flat, nested, *per_signal):
            assert value.shape == ()
        torch.testing.assert_close(flat, per_signal.mean(), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(nested, flat)


@pytest.mark.parametrize("metric", [mrstft_distance, _mel, si_sdr, loudness_difference_db])
@pytest.mark.parametrize("identical", [False, True])
def test_gradients_are_finite(metric, identical: bool) -> None:
    target = _white(30, n=2048).reshape(1, 1, -1)
    start = target.clone() if identical else 0.5 * target + _white(31, n=2048).reshape(1, 1, -1)
    pred = start.clone().requires_grad_(True)
    metric(pred, target).backward()
    assert pred.grad is not None
    assert torch.isfinite(pred.grad).all()
    if not identical:
        assert pred.grad.abs().sum() > 0


def test_fft_sizes_longer_than_the_signal_are_skipped() -> None:
    x, y = _white(40, n=300), _white(41, n=300)
    assert torch.isfinite(mrstft_distance(x, y))
    torch.testing.assert_close(mrstft_distance(x, y), mrstft_distance(x, y, fft_sizes=(256, 128)))
    with pytest.raises(ValueError, match="shorter than every FFT size"):
        mrstft_distance(x[:100], y[:100])
    with pytest.raises(ValueError, match="shorter than every FFT size"):
        mel_distance(x, y, SAMPLE_RATE)


def test_mismatched_or_unsupported_shapes_raise() -> None:
    x = _white(42, n=1024)
    with pytest.raises(ValueError, match="shapes differ"):
        si_sdr(x, x[:-1])
    with pytest.raises(ValueError, match=r"\(B, C, T\)"):
        mrstft_distance(x.reshape(1, 1, 1, -1), x.reshape(1, 1, 1, -1))


def test_rms_db_of_a_full_scale_sine_is_minus_3_db() -> None:
    t = torch.arange(SAMPLE_RATE, dtype=torch.float64) / SAMPLE_RATE
    sine = torch.sin(2 * math.pi * 1000 * t)
    assert rms_db(sine).item() == pytest.approx(-3.0103, abs=1e-3)
    assert rms_db(torch.stack([sine, 0.5 * sine])).shape == (2,)


def test_latent_health_of_a_single_dimension():
    import torch

    from helius.metrics import latent_health

    health = latent_health(torch.randn(50, 1), torch.tensor([0.5]))
    assert health["active_dims"] == 1.0 and health["pca_dims_99"] == 1.0


def test_si_sdr_of_silence_is_the_floor_not_zero() -> None:
    """Silence holds none of the target: it scores the floor, below a noisy estimate."""
    x = _white(2)
    noisy = x + 3.0 * _white(3)
    assert si_sdr(torch.zeros_like(x), x).item() == SI_SDR_FLOOR_DB
    assert SI_SDR_FLOOR_DB < si_sdr(noisy, x).item() < 0.0


@pytest.mark.parametrize("silent", [None, "pred", "target"])
def test_fast_spectrum_distance_equals_the_autograd_formula(silent: str | None) -> None:
    """stft_frames + spectrum_distance (hand-written backward) give torch.stft + abs +
    spectral_distance's value and gradient, also for silent signals (float64 for exactness)."""
    from helius.metrics import spectral_distance, spectrum_distance, stft, stft_frames

    generator = torch.Generator().manual_seed(0)
    pred = 0.1 * torch.randn(3, 2000, generator=generator, dtype=torch.float64)
    target = 0.1 * torch.randn(3, 2000, generator=generator, dtype=torch.float64)
    if silent == "pred":
        pred[1] = 0.0
    if silent == "target":
        target[2] = 0.0
    for n_fft in (512, 128):
        frames = stft_frames(target, n_fft, 0.25)
        assert torch.allclose(frames.transpose(1, 2), stft(target, n_fft, 0.25), atol=1e-10)
        fast_pred = pred.clone().requires_grad_(True)
        fast = spectrum_distance(stft_frames(fast_pred, n_fft, 0.25), frames.abs())
        fast.backward()
        plain_pred = pred.clone().requires_grad_(True)
        target_mag = stft(target, n_fft, 0.25).abs()
        plain = spectral_distance(stft(plain_pred, n_fft, 0.25).abs(), target_mag)
        plain.backward()
        assert torch.allclose(fast, plain, atol=1e-10)
        assert torch.isfinite(fast_pred.grad).all()
        assert torch.allclose(fast_pred.grad, plain_pred.grad, atol=1e-9)


@pytest.mark.parametrize("n", [15, 16, 128])
def test_real_fft_backward_matches_finite_differences(n):
    """The loss's rfft has a hand-written backward (one inverse real FFT): checked against
    numerical derivatives, for odd and even sizes (Nyquist bin or none)."""
    x = torch.randn(2, 3, n, dtype=torch.float64, generator=torch.Generator().manual_seed(n))
    assert torch.autograd.gradcheck(real_fft, (x.requires_grad_(),))
    torch.testing.assert_close(real_fft(x.detach()), torch.fft.rfft(x.detach(), dim=-1))
