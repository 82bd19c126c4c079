"""Signal features on numpy arrays (no torch): mel filterbank, level, brightness, noisiness."""

from __future__ import annotations

import numpy as np

# Slaney mel scale (Auditory Toolbox): linear below 1 kHz, logarithmic above.
_HZ_PER_MEL_BELOW_BREAK = 200.0 / 3.0
_BREAK_HZ = 1000.0
_BREAK_MEL = _BREAK_HZ / _HZ_PER_MEL_BELOW_BREAK
_LOG_STEP_PER_MEL = np.log(6.4) / 27.0

# Frames whose mean bin power is below this are digital silence, not "a flat spectrum".
_SILENT_FRAME_POWER = 1e-20
# Keeps log() finite for exactly-zero bins of otherwise active frames.
_POWER_FLOOR = 1e-30


def hz_to_mel(f_hz: np.ndarray | float) -> np.ndarray:
    """Frequency in Hz -> Slaney mel."""
    f_hz = np.asarray(f_hz, dtype=np.float64)
    # np.maximum keeps the unused log branch free of log(0) warnings.
    above = _BREAK_MEL + np.log(np.maximum(f_hz, _BREAK_HZ) / _BREAK_HZ) / _LOG_STEP_PER_MEL
    return np.where(f_hz < _BREAK_HZ, f_hz / _HZ_PER_MEL_BELOW_BREAK, above)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Slaney mel -> frequency in Hz."""
    mel = np.asarray(mel, dtype=np.float64)
    above = _BREAK_HZ * np.exp(_LOG_STEP_PER_MEL * (np.maximum(mel, _BREAK_MEL) - _BREAK_MEL))
    return np.where(mel < _BREAK_MEL, mel * _HZ_PER_MEL_BELOW_BREAK, above)


def mel_filterbank(
    sample_rate: int,
    n_fft: int,
    n_mels: int,
    f_min: float = 0.0,
    f_max: float | None = None,
) -> np.ndarray:
    """Triangular mel filters, shape (n_mels, n_fft // 2 + 1), float64; f_min/f_max in Hz.

    Slaney mel scale; each triangle has unit area in Hz (Slaney normalisation), so a filter's
    output is the mean magnitude over its band rather than a sum that grows with bandwidth.
    Raises ValueError if a filter would cover no FFT bin (too many mels for this n_fft).
    """
    nyquist_hz = sample_rate / 2.0
    f_max = nyquist_hz if f_max is None else float(f_max)
    if sample_rate <= 0 or n_fft < 2 or n_mels < 1:
        raise ValueError(
            f"need sample_rate > 0, n_fft >= 2, n_mels >= 1; got {sample_rate}, {n_fft}, {n_mels}"
        )
    if not 0.0 <= f_min < f_max <= nyquist_hz:
        raise ValueError(
            f"need 0 <= f_min < f_max <= {nyquist_hz:g} Hz (Nyquist); got f_min={f_min:g}, "
            f"f_max={f_max:g}"
        )
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    lower_hz, center_hz, upper_hz = (edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None])
    bins_hz = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)[None, :]
    rising = (bins_hz - lower_hz) / (center_hz - lower_hz)
    falling = (upper_hz - bins_hz) / (upper_hz - center_hz)
    weights = np.maximum(0.0, np.minimum(rising, falling)) * (2.0 / (upper_hz - lower_hz))
    empty = np.flatnonzero(weights.sum(axis=1) == 0.0)
    if empty.size:
        raise ValueError(
            f"mel filters {empty.tolist()} cover no FFT bin: n_mels={n_mels} is too many for "
            f"n_fft={n_fft} at {sample_rate} Hz between {f_min:g} and {f_max:g} Hz; use fewer "
            "mels or a larger n_fft"
        )
    return weights


def rms_db(x: np.ndarray, eps: float = 1e-10) -> float:
    """RMS level of all samples in dB re full scale (1.0); the default eps puts silence at -100."""
    x = np.asarray(x, dtype=np.float64)
    return float(10.0 * np.log10(np.mean(x**2) + eps))


def peak_db(x: np.ndarray, eps: float = 1e-10) -> float:
    """Peak absolute sample in dB re full scale (1.0); the default eps puts silence at -100."""
    x = np.asarray(x, dtype=np.float64)
    return float(10.0 * np.log10(np.max(np.abs(x)) ** 2 + eps))


def _magnitude_frames(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """|rFFT| of periodic-Hann frames of a mono signal, shape (frames, n_fft // 2 + 1)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"expected a mono signal of shape (samples,), got shape {x.shape}")
    if x.size == 0 or n_fft < 2 or hop < 1:
        raise ValueError(f"need a non-empty signal, n_fft >= 2, hop >= 1; got {n_fft=}, {hop=}")
    if x.size < n_fft:
        x = np.pad(x, (0, n_fft - x.size))
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop]
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)
    return np.abs(np.fft.rfft(frames * window, axis=-1))


def spectral_centroid_hz(
    x: np.ndarray, sample_rate: int, n_fft: int = 2048, hop: int = 512
) -> float:
    """Magnitude-weighted mean frequency in Hz (loud frames count more); 0 = silent."""
    magnitude = _magnitude_frames(x, n_fft, hop)
    total = magnitude.sum()
    if total == 0.0:
        return 0.0
    bins_hz = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)
    return float((magnitude * bins_hz).sum() / total)


def spectral_flatness(x: np.ndarray, n_fft: int = 2048, hop: int = 512) -> float:
    """Geometric over arithmetic mean of bin power, mean over non-silent frames; unitless, 0..1."""
    power = _magnitude_frames(x, n_fft, hop) ** 2
    mean_power = power.mean(axis=1)
    active = mean_power > _SILENT_FRAME_POWER
    if not active.any():
        return 0.0
    log_power = np.log(np.maximum(power[active], _POWER_FLOOR))
    flatness = np.exp(log_power.mean(axis=1)) / mean_power[active]
    return float(np.clip(flatness, 0.0, 1.0).mean())
