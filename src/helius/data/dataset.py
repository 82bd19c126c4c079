"""Training data read lazily from a prep index: fixed-length crops of segment WAVs as tensors.

Memory does not grow with the corpus: only the index (a list of paths) is held; audio is read
per item. Random crops are drawn from a generator seeded by (seed, epoch, item), so a resumed
run sees exactly the crops an uninterrupted one would have seen.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import Dataset, Sampler

from helius.errors import DataError


def index_has_entries(index_path: str | os.PathLike) -> bool:
    """Whether an index exists and lists anything (a validation index may be absent or empty)."""
    path = Path(index_path)
    return path.is_file() and bool(path.read_text().strip())


def with_validation(
    train_set: SegmentDataset, val_index: str | os.PathLike, eval_dataset
) -> tuple[SegmentDataset, SegmentDataset | None]:
    """A task's (train, validation) pair: `eval_dataset(val_index)` when that index lists
    anything, else no validation."""
    return train_set, eval_dataset(val_index) if index_has_entries(val_index) else None


def read_index(index_path: str | os.PathLike) -> list[Path]:
    """Segment paths listed in an index (relative entries resolve against the index's folder)."""
    index_path = Path(index_path)
    if not index_path.is_file():
        raise DataError(
            f"index {index_path} does not exist; prepare data first with "
            f"`helius prep --input_dir YOUR_AUDIO --output_dir {index_path.parent}`"
        )
    base = index_path.parent
    paths = [base / line.strip() for line in index_path.read_text().splitlines() if line.strip()]
    if not paths:
        raise DataError(f"index {index_path} lists no segments; check prep_report.json beside it")
    return paths


class SegmentDataset(Dataset):
    """Items are (channels, length_samples) float32 tensors cut from the indexed segments.

    `length_samples` None keeps each segment whole; shorter segments are zero-padded on the
    right. With `random_crop` the crop offset is random (per epoch), else the segment start.
    """

    def __init__(
        self,
        index_path: str | os.PathLike,
        sample_rate: int,
        length_samples: int | None = None,
        channels: int = 1,
        random_crop: bool = True,
        seed: int = 0,
    ) -> None:
        self.paths = read_index(index_path)
        self.index_path = Path(index_path)
        self.sample_rate = sample_rate
        self.length_samples = length_samples
        self.channels = channels
        self.random_crop = random_crop
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Crops depend on the epoch so that each epoch sees new ones, reproducibly."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, item: int) -> torch.Tensor:
        path = self.paths[item]
        try:
            info = sf.info(str(path))
        except (sf.LibsndfileError, RuntimeError) as error:
            raise DataError(f"cannot read segment {path} ({error}); re-run helius prep") from None
        if info.samplerate != self.sample_rate:
            raise DataError(
                f"segment {path} is {info.samplerate} Hz but data.sample_rate is "
                f"{self.sample_rate}; re-run helius prep with --sample_rate {self.sample_rate} "
                "or set data.sample_rate to match"
            )
        length = self.length_samples or info.frames
        start = 0
        if self.random_crop and info.frames > length:
            rng = np.random.default_rng([self.seed, self.epoch, item])
            start = int(rng.integers(0, info.frames - length + 1))
        audio, _ = sf.read(str(path), start=start, frames=length, dtype="float32", always_2d=True)
        audio = _match_channels(audio.T, self.channels, path)
        if audio.shape[1] < length:
            audio = np.pad(audio, ((0, 0), (0, length - audio.shape[1])))
        return torch.from_numpy(np.ascontiguousarray(audio))


def _match_channels(audio: np.ndarray, channels: int, path: Path) -> np.ndarray:
    if audio.shape[0] == channels:
        return audio
    if channels == 1:
        return audio.mean(axis=0, keepdims=True)
    if audio.shape[0] == 1:
        return np.repeat(audio, channels, axis=0)
    raise DataError(f"segment {path} has {audio.shape[0]} channels, the model wants {channels}")


class EpochSampler(Sampler[int]):
    """A seeded shuffle per epoch, sharded across ranks, that can skip already-seen batches.

    Every rank draws the same permutation from (seed, epoch) and takes every world_size-th
    item, so DDP needs no extra communication, and a resumed run continues mid-epoch.
    """

    def __init__(
        self, size: int, seed: int = 0, shuffle: bool = True, rank: int = 0, world_size: int = 1
    ) -> None:
        self.size, self.seed, self.shuffle = size, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int, skip_items: int = 0) -> None:
        self.epoch, self.skip = epoch, skip_items

    def order(self) -> list[int]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.size, generator=generator).tolist()
        else:
            order = list(range(self.size))
        # Pad so every rank gets the same number of items (DDP steps must line up).
        per_rank = -(-self.size // self.world_size)
        order += order[: per_rank * self.world_size - self.size]
        return order[self.rank :: self.world_size]

    def __iter__(self):
        return iter(self.order()[self.skip :])

    def __len__(self) -> int:
        return max(0, -(-self.size // self.world_size) - self.skip)
