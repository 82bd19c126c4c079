"""What training the latent prior means: windows of cached latent runs, a chunked NLL objective
with state carried between chunks, and validation NLL per frame. Runs in the shared trainer.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from helius.config import HeliusConfig
from helius.errors import DataError
from helius.models.checkpoint import load_vae, save_checkpoint
from helius.models.prior import LatentPrior, build_prior
from helius.train.latents import LatentSet, load_or_encode, remove_stale_caches
from helius.train.logging import TrainLogger
from helius.train.runtime import unwrap
from helius.train.task import Task, Validation


class LatentWindows(Dataset):
    """Windows of `window_frames` frames from latent runs, as standardised-ready (T, D) tensors.

    Training windows start at a random frame (seeded by seed, epoch and item); validation
    windows tile each run from its start.
    """

    def __init__(
        self,
        runs: list[torch.Tensor],
        window_frames: int,
        random_start: bool,
        seed: int = 0,
        what: str = "training",
    ) -> None:
        self.runs = [run for run in runs if run.shape[-1] >= window_frames]
        if not self.runs:
            longest = max((run.shape[-1] for run in runs), default=0)
            raise DataError(
                f"no {what} latent run is {window_frames} frames long (the longest has "
                f"{longest}): lower prior.chunk_frames or prior.chunks, or prepare longer files"
            )
        self.window_frames = window_frames
        self.random_start = random_start
        self.seed = seed
        self.epoch = 0
        # One item per window's worth of frames, so long runs are seen proportionally more.
        self.items = [
            (run_index, start)
            for run_index, run in enumerate(self.runs)
            for start in range(0, run.shape[-1] - window_frames + 1, window_frames)
        ]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, item: int) -> torch.Tensor:
        run_index, start = self.items[item]
        run = self.runs[run_index]
        if self.random_start:
            rng = np.random.default_rng([self.seed, self.epoch, item])
            start = int(rng.integers(0, run.shape[-1] - self.window_frames + 1))
        return run[:, start : start + self.window_frames]


class PriorTask(Task):
    """Train a GRU or Transformer prior on the latents of a trained wave VAE."""

    name = "prior"
    kind = "prior"
    checkpoint_prefix = "prior_"

    def __init__(self, config: HeliusConfig, vae_checkpoint: str | os.PathLike) -> None:
        self.vae_checkpoint = Path(vae_checkpoint)
        self.vae, vae_config = load_vae(self.vae_checkpoint)
        # The prior runs on the VAE's data and model settings and on its own training section
        # (prior.train), which is the run's train section for the shared trainer.
        # Latents are encoded at the VAE's rate from the indexes this config names.
        data = vae_config.data.model_copy(
            update={"train_index": config.data.train_index, "val_index": config.data.val_index}
        )
        self.config = config.model_copy(
            update={"model": vae_config.model, "data": data, "train": config.prior.train}
        )
        self.vae_sample_rate = vae_config.data.sample_rate
        self.channels = 1 if vae_config.data.mono else 2
        self.latents: LatentSet | None = None

    @property
    def window_frames(self) -> int:
        prior = self.config.prior
        return prior.chunks * prior.chunk_frames + 1

    def load_latents(self) -> LatentSet:
        if self.latents is None:
            data = self.config.data
            cache_dir = Path(self.config.train.checkpoint_dir) / "latent_cache"
            self.latents = load_or_encode(
                self.vae,
                self.vae_checkpoint,
                Path(data.train_index),
                Path(data.val_index),
                self.vae_sample_rate,
                self.channels,
                cache_dir,
            )
            remove_stale_caches(cache_dir, keep=self.latents.cache_path)
        return self.latents

    def build_model(self) -> LatentPrior:
        prior = build_prior(self.config.prior, self.vae.latent_dim)
        prior.set_statistics(*self.load_latents().statistics())
        return prior

    def datasets(self) -> tuple[LatentWindows, LatentWindows | None]:
        latents = self.load_latents()
        train = LatentWindows(latents.train, self.window_frames, True, self.config.train.seed)
        val = None
        if latents.val and any(run.shape[-1] >= self.window_frames for run in latents.val):
            val = LatentWindows(latents.val, self.window_frames, False, what="validation")
        return train, val

    def loss(self, model: nn.Module, batch: torch.Tensor, step: int):
        """Mean NLL per frame over the window, chunk by chunk with the state carried over."""
        prior = _unwrap(model)
        frames = prior.standardise(batch)
        chunk = self.config.prior.chunk_frames
        state, total = None, frames.new_zeros(())
        for begin in range(0, frames.shape[1] - 1, chunk):
            inputs = frames[:, begin : begin + chunk]
            targets = frames[:, begin + 1 : begin + chunk + 1]
            nll, state = model(inputs, state, targets)
            total = total + nll
            # Truncated backpropagation: gradients stop at chunk borders, the state does not.
            state = prior.detach_state(state)
        loss = total / self.config.prior.chunks
        return loss, {"nll_per_frame": float(loss.detach())}

    @torch.no_grad()
    def validate(self, model: nn.Module, batches: Iterator[torch.Tensor]) -> Validation:
        """The mean negative log-likelihood of the validation latents (nats per frame)."""
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        total, count = 0.0, 0
        for batch in batches:
            loss, _ = self.loss(model, batch.to(device), 0)
            total += float(loss) * batch.shape[0]
            count += batch.shape[0]
        model.train(was_training)
        nll = total / max(count, 1)
        return Validation(score=nll, metrics={"nll_per_frame": nll})

    def log_media(self, logger: TrainLogger, model: nn.Module, batch: Any, step: int) -> None:
        """Nothing to listen to cheaply here: dreams need the VAE decoder (helius dream)."""


def _unwrap(model: nn.Module) -> LatentPrior:
    """The prior inside any DDP and torch.compile wrappers."""
    prior = unwrap(model)
    assert isinstance(prior, LatentPrior), type(prior)
    return prior


def save_final(path: Path, config: HeliusConfig, prior: LatentPrior, vae_checkpoint: Path):
    """`prior_final.pt`: the trained prior, its config and the VAE it belongs to."""
    return save_checkpoint(
        path,
        {
            "kind": "prior",
            "config": config.model_dump(mode="json"),
            "model": prior.state_dict(),
            "ema": None,
            "vae_checkpoint": str(vae_checkpoint),
        },
    )


def train_prior(config: HeliusConfig, vae_checkpoint: str | os.PathLike, resume: bool = False):
    """Encode (or load cached) latents, train the prior, write `prior_final.pt`.

    Returns (FitResult, path of prior_final.pt, LatentSet).
    """
    from helius.train.trainer import fit

    task = PriorTask(config, vae_checkpoint)
    result = fit(task.config, task, resume=resume)
    final = Path(task.config.train.checkpoint_dir) / "prior_final.pt"
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun only rank 0 writes
        save_final(final, task.config, _unwrap(result.model), task.vae_checkpoint)
    return result, final, task.load_latents()
