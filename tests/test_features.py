"""Signal features: sines and noise give the known centroid, flatness, levels and mel filters."""

from __future__ import annotations

import numpy as np
import pytest

from helius.audio.features import (
    hz_to_mel,
    mel_filterbank,
    mel_to_hz,
    peak_db,
    rms_db,
    spectral_centroid_hz,
    spectral_flatness,
)

SAMPLE_RATE = 16000


def _sine(freq_hz: float, amplitude: float = 1.0, duration_seconds: float = 1.0) -> np.ndarray:
    t_seconds = np.arange(int(SAMPLE_RATE * duration_seconds)) / SAMPLE_RATE
    return amplitude * np.sin(2 * np.pi * freq_hz * t_seconds)


def _white(seed: int, n: int = SAMPLE_RATE) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n) * 0.1


def test_centroid_of_a_sine_is_its_frequency() -> None:
    low_hz = spectral_centroid_hz(_sine(1000.0), SAMPLE_RATE)
    high_hz = spectral_centroid_hz(_sine(4000.0), SAMPLE_RATE)
    assert low_hz == pytest.approx(1000.0, abs=30.0)
    assert high_hz > low_hz


def test_flatness_separates_noise_from_a_sine() -> None:
    assert spectral_flatness(_white(0)) > 0.5
    assert spectral_flatness(_sine(1000.0)) < 0.05


def test_silence_gives_zero_centroid_and_flatness() -> None:
    silence = np.zeros(4096)
    assert spectral_centroid_hz(silence, SAMPLE_RATE) == 0.0
    assert spectral_flatness(silence) == 0.0


def test_signals_shorter_than_one_frame_are_zero_padded() -> None:
    assert spectral_centroid_hz(_sine(1000.0)[:500], SAMPLE_RATE) > 0.0
    assert 0.0 < spectral_flatness(_white(1, n=500)) <= 1.0


def test_spectral_features_reject_multichannel_input() -> None:
    with pytest.raises(ValueError, match="mono"):
        spectral_flatness(np.zeros((2, 4096)))


def test_levels_of_a_full_scale_sine() -> None:
    sine = _sine(1000.0)
    assert rms_db(sine) == pytest.approx(-3.0103, abs=1e-3)
    assert peak_db(sine) == pytest.approx(0.0, abs=1e-3)
    assert peak_db(0.5 * sine) == pytest.approx(-6.0206, abs=1e-3)
    assert rms_db(np.zeros(100)) == pytest.approx(-100.0)


def test_mel_scale_is_linear_to_1_khz_and_invertible() -> None:
    assert hz_to_mel(1000.0) == pytest.approx(15.0)
    assert hz_to_mel(500.0) == pytest.approx(7.5)
    freqs_hz = np.array([0.0, 200.0, 999.0, 1000.0, 4000.0, 22050.0])
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(freqs_hz)), freqs_hz, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(("sample_rate", "n_fft"), [(16000, 512), (16000, 2048), (44100, 1024)])
def test_mel_filterbank_rows_are_nonnegative_and_nonempty(sample_rate: int, n_fft: int) -> None:
    weights = mel_filterbank(sample_rate, n_fft, n_mels=80)
    assert weights.shape == (80, n_fft // 2 + 1)
    assert (weights >= 0.0).all()
    assert (weights.sum(axis=1) > 0.0).all()


def test_mel_filters_have_unit_area_in_hz() -> None:
    n_fft = 8192
    weights = mel_filterbank(SAMPLE_RATE, n_fft, n_mels=40)
    bin_width_hz = SAMPLE_RATE / n_fft
    np.testing.assert_allclose(weights.sum(axis=1) * bin_width_hz, 1.0, rtol=0.05)


def test_mel_filterbank_respects_the_band_limits() -> None:
    n_fft = 1024
    weights = mel_filterbank(SAMPLE_RATE, n_fft, n_mels=40, f_min=300.0, f_max=4000.0)
    bins_hz = np.fft.rfftfreq(n_fft, d=1.0 / SAMPLE_RATE)
    covered_hz = bins_hz[weights.sum(axis=0) > 0.0]
    assert covered_hz.min() > 300.0
    assert covered_hz.max() < 4000.0


def test_mel_filterbank_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="cover no FFT bin"):
        mel_filterbank(SAMPLE_RATE, 64, n_mels=80)
    with pytest.raises(ValueError, match="Nyquist"):
        mel_filterbank(SAMPLE_RATE, 1024, n_mels=40, f_max=9000.0)
