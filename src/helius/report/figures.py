"""Report figures with matplotlib (Agg, no display): loss curves, spectrograms, the latent map.

Every function returns PNG bytes, so the page can embed them and tests can check them.
"""

from __future__ import annotations

import io as bytes_io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

LOG_FLOOR_DB = -100.0


def _png(figure) -> bytes:
    buffer = bytes_io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def scalar_series(log_dir: Path, tag: str) -> tuple[list[int], list[float]]:
    """(steps, values) of one TensorBoard scalar from every event file under log_dir."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    steps: list[int] = []
    values: list[float] = []
    for events in sorted(Path(log_dir).glob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
        accumulator.Reload()
        if tag in accumulator.Tags()["scalars"]:
            for event in accumulator.Scalars(tag):
                steps.append(event.step)
                values.append(event.value)
    order = np.argsort(steps, kind="stable")
    return [steps[i] for i in order], [values[i] for i in order]


def loss_curves(curves: dict[str, tuple[list[int], list[float]]]) -> bytes:
    """One panel per named (steps, values) curve."""
    figure, axes = plt.subplots(1, max(1, len(curves)), figsize=(4.2 * max(1, len(curves)), 3))
    for axis, (name, (steps, values)) in zip(np.atleast_1d(axes), curves.items(), strict=False):
        axis.plot(steps, values, linewidth=1.2, color="#3465a4")
        axis.set_title(name, fontsize=10)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
    return _png(figure)


def _spectrogram_db(audio: np.ndarray, n_fft: int = 1024) -> np.ndarray:
    mono = np.asarray(audio, dtype=np.float64).reshape(-1, np.asarray(audio).shape[-1]).mean(0)
    hop = n_fft // 4
    frames = max(1, 1 + (len(mono) - n_fft) // hop)
    window = np.hanning(n_fft)
    padded = np.pad(mono, (0, max(0, n_fft - len(mono))))
    stack = np.stack([padded[i * hop : i * hop + n_fft] * window for i in range(frames)])
    magnitude = np.abs(np.fft.rfft(stack, axis=1)).T
    return np.maximum(20 * np.log10(magnitude + 1e-10), LOG_FLOOR_DB)


def spectrograms(named_audio: dict[str, np.ndarray], sample_rate: int) -> bytes:
    """Spectrograms side by side on one shared dB scale (e.g. input vs reconstruction)."""
    spectra = {name: _spectrogram_db(audio) for name, audio in named_audio.items()}
    top = max(float(s.max()) for s in spectra.values())
    figure, axes = plt.subplots(1, len(spectra), figsize=(4.2 * len(spectra), 3), sharey=True)
    for axis, (name, db) in zip(np.atleast_1d(axes), spectra.items(), strict=True):
        seconds = db.shape[1] * 256 / sample_rate
        axis.imshow(
            db,
            origin="lower",
            aspect="auto",
            vmin=top - 80,
            vmax=top,
            cmap="magma",
            extent=(0, seconds, 0, sample_rate / 2000),
        )
        axis.set_title(name, fontsize=10)
        axis.set_xlabel("s")
    np.atleast_1d(axes)[0].set_ylabel("kHz")
    return _png(figure)


def latent_map(points: np.ndarray, colour: np.ndarray, colour_name: str, labels=None) -> bytes:
    """2D projection of latents, coloured by a measured attribute."""
    figure, axis = plt.subplots(figsize=(5, 4.2))
    scatter = axis.scatter(points[:, 0], points[:, 1], c=colour, s=18, cmap="viridis")
    figure.colorbar(scatter, ax=axis, label=colour_name)
    if labels is not None:
        for kind in sorted(set(labels)):
            mask = np.asarray(labels) == kind
            centre = points[mask].mean(axis=0)
            axis.annotate(kind, centre, fontsize=8, ha="center", alpha=0.8)
    axis.set_xticks([])
    axis.set_yticks([])
    axis.set_title("latent map (PCA)", fontsize=10)
    return _png(figure)
