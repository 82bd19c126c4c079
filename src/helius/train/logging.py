"""Training logs: TensorBoard scalars, audio and spectrogram images, written by rank 0 only."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch


def spectrogram_image(audio: torch.Tensor, n_fft: int = 1024) -> np.ndarray:
    """A (3, freq, time) uint8 image of the log-magnitude spectrogram of mono audio (T,)."""
    n_fft = min(n_fft, 1 << max(1, (audio.shape[-1] // 2).bit_length() - 1))
    window = torch.hann_window(n_fft)
    spec = torch.stft(audio.float().cpu(), n_fft, n_fft // 4, window=window, return_complex=True)
    db = 20 * torch.log10(spec.abs() + 1e-5)
    level = ((db - db.max() + 80.0) / 80.0).clamp(0, 1).flip(0).numpy()
    # A simple dark-blue-to-yellow ramp; no plotting library needed.
    red, green, blue = level**0.8, level**1.5, 0.5 * (1 - level) * (level > 0.02)
    return (np.stack([red, green, blue]) * 255).astype(np.uint8)


class TrainLogger:
    """A thin TensorBoard writer that does nothing on ranks other than 0 or when disabled."""

    def __init__(self, log_dir: str | os.PathLike | None, enabled: bool = True) -> None:
        self.writer = None
        if enabled and log_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            Path(log_dir).mkdir(parents=True, exist_ok=True)
            self.writer = SummaryWriter(str(log_dir))

    def scalars(self, values: dict[str, float], step: int) -> None:
        if self.writer is not None:
            for name, value in values.items():
                self.writer.add_scalar(name, value, step)

    def histogram(self, name: str, values: torch.Tensor, step: int) -> None:
        if self.writer is not None:
            self.writer.add_histogram(name, values.detach().float().cpu(), step)

    def audio(self, name: str, audio: torch.Tensor, sample_rate: int, step: int) -> None:
        """Log mono audio (T,) and its spectrogram."""
        if self.writer is not None:
            clip = audio.detach().float().cpu().clamp(-1, 1)
            self.writer.add_audio(name, clip[None], step, sample_rate=sample_rate)
            self.writer.add_image(f"{name}_spectrogram", spectrogram_image(clip), step)

    def image(self, name: str, image: torch.Tensor | np.ndarray, step: int) -> None:
        """Log a (channels, height, width) image with values in [0, 1]."""
        if self.writer is not None:
            self.writer.add_image(name, image, step)

    def text(self, name: str, text: str, step: int) -> None:
        if self.writer is not None:
            self.writer.add_text(name, text, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
