"""Audio and filesystem helpers for tests: every test makes its own audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
# A clip VAE small enough for unit tests: 0.25 s clips at 16 kHz, a 4-dimensional latent.
TINY_CLIP_OVERRIDES = [
    "model.clip.channels=[8,16]",
    "model.clip.strides=[4,4]",
    "model.clip.hidden=16",
    "model.latent_dim=4",
    "model.clip.clip_seconds=0.25",
    "data.sample_rate=16000",
]


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


def tiny_config(root: Path, *overrides: str):
    """configs/tiny.yaml reading root/data and writing root/checkpoints (no noise branch)."""
    from helius.config import load_config

    return load_config(
        REPO / "configs" / "tiny.yaml",
        [
            f"data.train_index={root / 'data' / 'train_index.txt'}",
            f"data.val_index={root / 'data' / 'val_index.txt'}",
            f"train.checkpoint_dir={root / 'checkpoints'}",
            f"train.log_dir={root / 'runs'}",
            "train.device=cpu",
            f"prior.train.checkpoint_dir={root / 'checkpoints'}",
            f"prior.train.log_dir={root / 'runs' / 'prior'}",
            "prior.train.device=cpu",
            "model.wave.noise_branch=false",  # so streamed output equals offline exactly
            "prior.chunk_frames=16",
            "prior.chunks=2",
            "prior.train.batch_size=4",
            *overrides,
        ],
    )


def tiny_discriminator(seed: int = 0):
    """A CombinedDiscriminator small enough for a test to train in seconds."""
    import torch

    from helius.nn.discriminators import CombinedDiscriminator

    torch.manual_seed(seed)
    return CombinedDiscriminator(
        fft_sizes=(128, 64),
        periods=(2, 3),
        stft_channels=4,
        period_channels=4,
        period_max_channels=16,
    )
