"""Latent sequences for the prior: encode a prepared data set with a trained VAE, cached on disk.

Segments that `helius prep` cut from one file in a row (`segments/<file>/00000.wav`,
`00001.wav`, ...) are encoded as one continuous run through the streaming encoder, so the
prior learns sequences as long as the source files instead of 2-second islands. A gap (a
segment dropped as silent) starts a new run.

The cache file name hashes the VAE checkpoint's bytes and the index contents, so a second
prior run with the same VAE reuses it, and a different checkpoint or index encodes anew.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from helius import progress
from helius.data.dataset import SegmentDataset, index_has_entries, read_index
from helius.errors import ConfigError
from helius.files import atomic_output

CACHE_FORMAT = "helius-latents-1"


@dataclass
class LatentSet:
    """Posterior-mean latent runs (each (D, frames)) of the train and validation indexes."""

    train: list[torch.Tensor]
    val: list[torch.Tensor]
    cache_path: Path
    from_cache: bool

    def statistics(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-dimension mean and std over every training frame."""
        frames = torch.cat(self.train, dim=1)
        return frames.mean(dim=1), frames.std(dim=1)


def contiguous_runs(paths: list[Path]) -> list[list[Path]]:
    """Group index entries into runs of consecutive segments of one source file, in order."""
    by_folder: dict[Path, list[tuple[int, Path]]] = {}
    singles: list[list[Path]] = []
    for path in paths:
        if path.stem.isdigit():
            by_folder.setdefault(path.parent, []).append((int(path.stem), path))
        else:
            singles.append([path])
    runs: list[list[Path]] = []
    for entries in by_folder.values():
        entries.sort()
        run = [entries[0][1]]
        for (previous, _), (number, path) in itertools.pairwise(entries):
            if number == previous + 1:
                run.append(path)
            else:
                runs.append(run)
                run = [path]
        runs.append(run)
    return runs + singles


def cache_key(vae_checkpoint: Path, *indexes: Path) -> str:
    digest = hashlib.sha256()
    with open(vae_checkpoint, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    for index in indexes:
        digest.update(index.read_bytes() if index.is_file() else b"")
    return digest.hexdigest()[:16]


@torch.no_grad()
def encode_runs(
    model: nn.Module, index_path: Path, sample_rate: int, channels: int, what: str
) -> list[torch.Tensor]:
    """Posterior means (D, frames) of every run of segments in an index."""
    if not hasattr(model, "streaming"):
        raise ConfigError(
            "the latent prior models latent sequences: train it on a wave_vae checkpoint "
            "(model.kind: wave_vae), not a clip_vae"
        )
    device = next(model.parameters()).device
    hop = int(model.hop_samples)
    dataset = SegmentDataset(index_path, sample_rate, None, channels, random_crop=False)
    position = {path: item for item, path in enumerate(dataset.paths)}
    runs = contiguous_runs(dataset.paths)
    streaming = bool(model.can_stream)
    model.streaming(streaming)
    sequences = []
    try:
        for run in progress.bar(runs, desc=f"encode {what}", unit="run"):
            if streaming:
                model.reset_streaming_state()
            pieces = []
            carry = torch.zeros(channels, 0)
            for path in run:
                # Streaming: samples past the last whole frame wait for the next segment, so
                # the run is encoded exactly as one continuous signal.
                audio = torch.cat([carry, dataset[position[path]]], dim=-1)
                usable = audio.shape[-1] // hop * hop
                carry = audio[:, usable:] if streaming else carry
                if usable:
                    mu, _ = model.encode(audio[None, :, :usable].to(device))
                    pieces.append(mu[0].float().cpu())
            if pieces:
                sequences.append(torch.cat(pieces, dim=-1))
    finally:
        if streaming:
            model.streaming(False)
    return sequences


def load_or_encode(
    model: nn.Module,
    vae_checkpoint: Path,
    train_index: Path,
    val_index: Path,
    sample_rate: int,
    channels: int,
    cache_dir: Path,
) -> LatentSet:
    """The latent runs of both indexes, from the cache when this VAE and data were seen."""
    read_index(train_index)  # a clear error for a missing or empty index
    key = cache_key(vae_checkpoint, train_index, val_index)
    cache_path = cache_dir / f"latents-{key}.pt"
    if cache_path.is_file():
        try:
            payload = torch.load(cache_path, weights_only=True)
            if payload.get("format") == CACHE_FORMAT:
                return LatentSet(payload["train"], payload["val"], cache_path, True)
        except Exception:  # an unreadable cache is rebuilt, never trusted
            pass
    train = encode_runs(model, train_index, sample_rate, channels, "train")
    has_val = index_has_entries(val_index)
    val = encode_runs(model, val_index, sample_rate, channels, "val") if has_val else []
    cache_dir.mkdir(parents=True, exist_ok=True)
    with atomic_output(cache_path) as tmp:
        torch.save({"format": CACHE_FORMAT, "train": train, "val": val}, tmp)
    return LatentSet(train, val, cache_path, False)


def remove_stale_caches(cache_dir: Path, keep: Path) -> None:
    """Caches of other VAE checkpoints are dead weight once a new one is written."""
    for path in cache_dir.glob("latents-*.pt"):
        if path != keep:
            path.unlink(missing_ok=True)
