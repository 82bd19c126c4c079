"""Audio and filesystem helpers for tests: every test makes its own audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf


def sine(
    seconds: float,
    sample_rate: int,
    freq_hz: float = 440.0,
    amplitude: float = 0.5,
    channels: int = 1,
) -> np.ndarray:
    """A (channels, frames) float32 sine; channel k has frequency freq_hz * (k + 1)."""
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    rows = [amplitude * np.sin(2 * np.pi * freq_hz * (k + 1) * t) for k in range(channels)]
    return np.asarray(rows, dtype=np.float32)


def noise(
    seconds: float, sample_rate: int, amplitude: float = 0.1, channels: int = 1, seed: int = 0
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    frames = round(seconds * sample_rate)
    return (amplitude * rng.standard_normal((channels, frames))).astype(np.float32)


def write(path: Path, audio: np.ndarray, sample_rate: int, **kwargs) -> Path:
    """Write (channels, frames) audio with soundfile (format from the extension)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(audio).T, sample_rate, **kwargs)
    return path


def snapshot(folder: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file under folder with size, mtime and content, to prove nothing changed."""
    return {
        path.relative_to(folder).as_posix(): (
            path.stat().st_size,
            path.stat().st_mtime_ns,
            path.read_bytes(),
        )
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }
