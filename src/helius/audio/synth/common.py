"""Shared machinery of the synth voices: parameter draws with overrides and signal helpers.

Each voice draws all of its random parameters first, in a fixed order, then lets keyword
overrides replace any of them, then renders. Overriding one parameter therefore leaves the
others and the noise realisation unchanged, which is what attribute-direction tests rely on.
Recorded values are rounded before rendering, so the parameters describe the audio exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Union

import numpy as np
from scipy import signal

RngLike = Union[np.random.Generator, int, Sequence[int]]  # noqa: UP007 (used at runtime)
Sound = tuple[np.ndarray, dict[str, Any]]

LN_1000 = math.log(1000.0)  # a decay time is the time to fall 60 dB, i.e. to 1/1000
FILTER_LIMIT = 0.45  # of the sample rate: keeps filter corners clear of Nyquist
SCALES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "major_pentatonic": (0, 2, 4, 7, 9),
    "minor_pentatonic": (0, 3, 5, 7, 10),
}


def as_generator(rng: RngLike) -> np.random.Generator:
    """A numpy Generator from a Generator or a seed; None is refused as it is not reproducible."""
    if rng is None or isinstance(rng, (float, str, bytes)):
        raise TypeError(f"rng must be a numpy Generator or an integer seed, not {rng!r}")
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


class Draws:
    """Draws named parameters from an rng, letting overrides replace the drawn values."""

    def __init__(self, rng: np.random.Generator, overrides: dict[str, Any]) -> None:
        self.rng = rng
        self.values: dict[str, Any] = {}
        self._overrides = dict(overrides)

    def uniform(
        self,
        name: str,
        low: float,
        high: float,
        digits: int,
        limits: tuple[float, float] | None = None,
        log: bool = False,
    ) -> float:
        """Drawn in [low, high] (log-uniformly if `log`); an override must lie within `limits`."""
        if log:
            drawn = math.exp(self.rng.uniform(math.log(low), math.log(high)))
        else:
            drawn = float(self.rng.uniform(low, high))
        lo, hi = limits or (low, high)
        override = self._overrides.pop(name, None)
        if override is None:
            value = round(min(max(drawn, lo), hi), digits)
        else:
            value = float(override)
            if not (math.isfinite(value) and lo <= value <= hi):
                raise ValueError(f"{name}={override!r} is outside [{lo:g}, {hi:g}]")
        self.values[name] = value
        return value

    def choice(self, name: str, options: Sequence[Any]) -> Any:
        drawn = options[int(self.rng.integers(len(options)))]
        override = self._overrides.pop(name, None)
        if override is not None and override not in options:
            raise ValueError(f"{name}={override!r} is not one of {list(options)}")
        # the option itself, not the override, so 50.0 for 50 still records an int
        self.values[name] = drawn if override is None else options[list(options).index(override)]
        return self.values[name]

    def check_all_used(self) -> None:
        if self._overrides:
            raise ValueError(
                f"unknown parameter(s) {sorted(self._overrides)}; "
                f"this sound takes {sorted(self.values)}"
            )


# --- signal helpers ----------------------------------------------------------------------


def frame_count(sample_rate: int, duration_seconds: float, min_seconds: float) -> int:
    if int(sample_rate) != sample_rate or sample_rate < 8000:
        raise ValueError(f"sample_rate must be an integer of at least 8000 Hz, not {sample_rate}")
    if not duration_seconds >= min_seconds:
        raise ValueError(f"duration_seconds must be at least {min_seconds}, not {duration_seconds}")
    return round(duration_seconds * sample_rate)


def decay_envelope(t_seconds: np.ndarray, decay_seconds: float) -> np.ndarray:
    return np.exp(-LN_1000 * np.maximum(t_seconds, 0.0) / decay_seconds) * (t_seconds >= 0)


def phase_of(freq_hz: np.ndarray, sample_rate: int) -> np.ndarray:
    """Running phase of a swept oscillator, zero at the first sample so sounds start silent."""
    return 2 * np.pi * (np.cumsum(freq_hz) - freq_hz[0]) / sample_rate


def apply_filter(x: np.ndarray, btype: str, cutoff_hz: Any, sample_rate: int, order: int = 2):
    sos = signal.butter(order, cutoff_hz, btype=btype, fs=sample_rate, output="sos")
    return signal.sosfilt(sos, x)


def unit_rms(x: np.ndarray) -> np.ndarray:
    return x / max(float(np.sqrt(np.mean(x**2))), 1e-12)


def finish_sound(
    x: np.ndarray, sample_rate: int, gain_db: float, fade_in_s: float, fade_out_s: float
):
    """Fade both ends to exactly zero (no clicks) and peak-normalise to `gain_db` dBFS."""
    n_in = max(2, min(round(fade_in_s * sample_rate), x.size // 4))
    n_out = max(2, min(round(fade_out_s * sample_rate), x.size // 4))
    x = x.copy()
    x[:n_in] *= np.linspace(0.0, 1.0, n_in)
    x[-n_out:] *= 0.5 * (1.0 + np.cos(np.linspace(0.0, np.pi, n_out)))
    x *= 10.0 ** (gain_db / 20.0) / max(float(np.max(np.abs(x))), 1e-12)
    return x.astype(np.float32)


def midi_to_hz(note: float) -> float:
    return 440.0 * 2.0 ** ((note - 69) / 12)
