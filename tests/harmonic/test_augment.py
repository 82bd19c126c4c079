"""Training augmentation (`helius.harmonic.augment`): strength 0 is the identity, each effect
changes the signal by the amount it drew (measured independently), shapes and rate are kept,
items are reproducible by (seed, epoch, item), and the rubberband backend is optional."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from helius.errors import ConfigError, MissingToolError
from helius.harmonic import augment as augment_module
from helius.harmonic.augment import (
    AugmentDraw,
    AugmentedDataset,
    AugmentSettings,
    apply,
    augment,
    draw,
    generator_for,
    resolve_backend,
)

RATE = 8000
ONLY = {"gain": 0.0, "pitch": 0.0, "stretch": 0.0, "noise": 0.0}


def settings_for(effect: str | None = None, **extra) -> AugmentSettings:
    """Strength 1, librosa, and only `effect` switched on (all four when None)."""
    chances = {name: 1.0 if effect in (None, name) else 0.0 for name in ONLY}
    fields = {"strength": 1.0, "sample_rate": RATE, "backend": "librosa"}
    fields.update({f"{name}_probability": value for name, value in chances.items()})
    return AugmentSettings(**{**fields, **extra})


def sine(hz: float = 440.0, seconds: float = 1.0, amplitude: float = 0.25) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)[None]


def rms_db(signal: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(signal.astype(np.float64)))))


def peak_hz(signal: np.ndarray) -> float:
    """The strongest frequency of a mono signal: zero-padded FFT, parabolic peak interpolation."""
    mono = signal.reshape(-1).astype(np.float64) * np.hanning(signal.shape[-1])
    size = 16 * len(mono)
    spectrum = np.abs(np.fft.rfft(mono, size))
    k = int(np.argmax(spectrum))
    left, centre, right = np.log(spectrum[k - 1 : k + 2])
    offset = 0.5 * (left - right) / (left - 2 * centre + right)
    return (k + offset) * RATE / size


def pulse_period(signal: np.ndarray, search: tuple[int, int], samples: int) -> int:
    """The lag (samples) in `search` where the energy envelope of the first `samples` samples
    best matches itself (the peak of its correlation coefficient with itself shifted)."""
    energy = np.square(signal.reshape(-1)[:samples].astype(np.float64))
    envelope = np.convolve(energy, np.ones(40) / 40, mode="same")  # 5 ms: drops the carrier
    lags = np.arange(*search)
    scores = [np.corrcoef(envelope[:-lag], envelope[lag:])[0, 1] for lag in lags]
    return int(lags[int(np.argmax(scores))])


def pulse_train(period: int, seconds: float) -> np.ndarray:
    """A 1 kHz tone in sin^2-shaped pulses, one every `period` samples. The pulses are long
    against the phase vocoder's ~0.1 s window: it moves slow envelopes to the new tempo exactly,
    while a window-sized burst partly keeps its old spacing (measured: 1-2% of a 10% stretch)."""
    t = np.arange(round(seconds * RATE))
    pulses = np.sin(np.pi * t / period) ** 2
    return (0.4 * np.sin(2 * np.pi * 1000 * t / RATE) * pulses).astype(np.float32)[None]


def test_strength_zero_is_the_identity() -> None:
    audio = np.random.default_rng(0).uniform(-1.5, 1.5, (2, 3000))  # float64, beyond +-1
    quiet = AugmentSettings(strength=0.0, sample_rate=RATE)
    assert augment(audio, quiet, np.random.default_rng(1)) is audio
    tensor = torch.from_numpy(audio)
    assert augment(tensor, quiet, np.random.default_rng(1)) is tensor
    assert draw(quiet, np.random.default_rng(1)).is_identity
    # No effect drawn (every probability 0) is the identity too.
    off = AugmentSettings(strength=1.0, sample_rate=RATE, **{f"{k}_probability": 0.0 for k in ONLY})
    assert augment(audio, off, np.random.default_rng(1)) is audio


def test_gain_changes_the_rms_by_the_drawn_decibels() -> None:
    settings = settings_for("gain")
    amounts = draw(settings, np.random.default_rng(3))
    assert 1.0 < abs(amounts.gain_db) <= 6.0
    audio = sine(amplitude=0.1)
    out = augment(audio, settings, np.random.default_rng(3))
    assert rms_db(out) - rms_db(audio) == pytest.approx(amounts.gain_db, abs=1e-3)
    assert (amounts.semitones, amounts.rate, amounts.snr_db) == (0.0, 1.0, np.inf)


def test_pitch_shift_moves_a_sine_by_the_drawn_semitones() -> None:
    settings = settings_for("pitch")
    amounts = draw(settings, np.random.default_rng(5))
    assert 0.5 < abs(amounts.semitones) <= 2.0
    audio = sine(440.0)
    out = augment(audio, settings, np.random.default_rng(5))
    assert out.shape == audio.shape and out.dtype == np.float32
    expected = 440.0 * 2.0 ** (amounts.semitones / 12.0)  # equal temperament
    assert peak_hz(audio) == pytest.approx(440.0, rel=1e-3)
    assert peak_hz(out) == pytest.approx(expected, rel=5e-3)


@pytest.mark.parametrize("seed", [0, 16])  # draws a faster (1.08) and a slower (0.90) tempo
def test_time_stretch_keeps_the_length_and_changes_the_period_of_a_pulse_train(seed) -> None:
    settings = settings_for("stretch")
    amounts = draw(settings, np.random.default_rng(seed))
    assert 0.05 < abs(amounts.rate - 1.0) <= 0.1
    audio = pulse_train(period=RATE, seconds=4.0)
    out = augment(audio, settings, np.random.default_rng(seed))
    assert out.shape == audio.shape and out.dtype == np.float32
    # Measured where the stretched audio is not yet cropped or padded (rate <= 1.1 leaves 90%).
    samples, search = int(0.88 * audio.shape[-1]), (int(0.8 * RATE), int(1.2 * RATE))
    assert pulse_period(audio, search, samples) == pytest.approx(RATE, abs=20)
    assert pulse_period(out, search, samples) == pytest.approx(RATE / amounts.rate, rel=0.015)
    assert peak_hz(out[:, :samples]) == pytest.approx(1000.0, rel=0.005)  # tempo moved, pitch not


def test_noise_is_added_at_the_drawn_snr() -> None:
    settings = settings_for("noise")
    amounts = draw(settings, np.random.default_rng(7))
    assert settings.noise_snr_db <= amounts.snr_db < np.inf
    audio = sine(amplitude=0.3)
    out = augment(audio, settings, np.random.default_rng(7))
    residual = out.astype(np.float64) - audio
    assert rms_db(audio) - rms_db(residual) == pytest.approx(amounts.snr_db, abs=0.01)
    # Strength scales the noise amplitude: half the strength, 6 dB more SNR for the same draw.
    half = draw(settings_for("noise", strength=0.5), np.random.default_rng(7))
    assert half.snr_db - amounts.snr_db == pytest.approx(20 * np.log10(2), abs=1e-9)


def test_every_effect_at_once_keeps_shape_rate_dtype_and_range() -> None:
    settings = settings_for(None, max_gain_db=24.0)  # loud enough to need the clip
    audio = np.concatenate([sine(330.0, amplitude=0.9), sine(550.0, amplitude=0.9)])
    tensor = torch.from_numpy(audio)
    out = augment(tensor, settings, np.random.default_rng(11))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    assert out.shape == tensor.shape
    assert torch.isfinite(out).all() and out.abs().max() <= 1.0
    assert not torch.allclose(out, tensor)
    mono = augment(audio[0], settings, np.random.default_rng(11))
    assert mono.shape == audio[0].shape and mono.dtype == np.float32


def test_items_are_reproducible_by_seed_epoch_and_item() -> None:
    class Tones(Dataset):
        def __init__(self) -> None:
            self.epochs: list[int] = []

        def set_epoch(self, epoch: int) -> None:
            self.epochs.append(epoch)

        def __len__(self) -> int:
            return 3

        def __getitem__(self, item: int):
            return torch.from_numpy(sine(200.0 + 50 * item, 0.5)), item

    settings = settings_for("gain", seed=4)
    base = Tones()
    data = AugmentedDataset(base, settings)
    assert len(data) == 3
    first, label = data[1]
    assert label == 1
    again, _ = AugmentedDataset(Tones(), settings)[1]
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    expected = augment(base[1][0], settings, generator_for(4, 0, 1))
    torch.testing.assert_close(first, expected, rtol=0, atol=0)
    data.set_epoch(2)
    assert base.epochs == [2]  # forwarded to the base's own per-epoch crops
    assert not torch.allclose(data[1][0], first)
    data.set_epoch(0)
    torch.testing.assert_close(data[1][0], first, rtol=0, atol=0)
    torch.testing.assert_close(data[-2][0], first, rtol=0, atol=0)
    other_seed, _ = AugmentedDataset(Tones(), settings_for("gain", seed=5))[1]
    assert not torch.allclose(other_seed, first)


def test_a_base_without_set_epoch_still_works() -> None:
    items = [torch.from_numpy(sine(300.0, 0.25))]
    data = AugmentedDataset(items, settings_for("gain"))  # a list is a map-style data set
    data.set_epoch(1)
    assert data[0].shape == items[0].shape


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="strength"):
        AugmentSettings(strength=1.5)
    with pytest.raises(ConfigError, match="backend"):
        AugmentSettings(backend="sox")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="noise_probability"):
        AugmentSettings(noise_probability=2.0)


def test_rubberband_requested_but_missing_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setattr(augment_module.shutil, "which", lambda name: None)
    assert resolve_backend("auto") == "librosa"
    with pytest.raises(MissingToolError, match="rubberband"):
        resolve_backend("rubberband")
    settings = settings_for("pitch", backend="rubberband")
    with pytest.raises(MissingToolError, match="apt install"):
        augment(sine(), settings, np.random.default_rng(0))


def test_the_rubberband_backend_runs_the_tool_with_duration_ratio_and_semitones(
    monkeypatch, tmp_path
) -> None:
    """A stand-in `rubberband` that records its arguments and copies its input: the command
    line, the temporary WAVs and the read-back, without the real tool."""
    tool = tmp_path / "rubberband"
    tool.write_text('#!/bin/sh\necho "$@" > "$(dirname "$0")/args.txt"\ncp "$6" "$7"\n')
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ.get('PATH', '')}")
    assert resolve_backend("auto") == "rubberband"
    settings = settings_for("pitch", backend="auto")
    audio = np.concatenate([sine(440.0, 0.5), sine(660.0, 0.5)])
    out = apply(audio, AugmentDraw(semitones=1.5, rate=1.25), settings)
    flags = (tmp_path / "args.txt").read_text().split()
    assert flags[:5] == ["-q", "-t", "0.800000000", "-p", "1.500000000"]
    assert out.shape == audio.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, audio, atol=1e-7)  # the stand-in changes nothing


@pytest.mark.skipif(shutil.which("rubberband") is None, reason="rubberband is not installed")
def test_rubberband_backend_shifts_pitch_and_keeps_the_length() -> None:
    assert resolve_backend("auto") == "rubberband"
    settings = settings_for("pitch", backend="rubberband")
    audio = sine(440.0)
    out = apply(audio, AugmentDraw(semitones=2.0, rate=1.05), settings)
    assert out.shape == audio.shape and out.dtype == np.float32
    assert peak_hz(out[:, : RATE // 2]) == pytest.approx(440.0 * 2 ** (2 / 12), rel=5e-3)
