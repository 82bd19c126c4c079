"""Shared fixtures: progress bars off, one compute thread, a tiny trained VAE + prior pair.

Tiny test models run faster on one thread, and one thread per process keeps the suite from
thrashing when several processes (DDP tests, subprocess scripts) share two cores. The
environment variable reaches the subprocesses that tests start.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
import torch
from helpers import tiny_config, write

from helius import progress
from helius.audio.synth import make_texture
from helius.data.prep import prepare
from helius.data.segment import PrepSettings

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _quiet_progress():
    progress.set_enabled(False)
    yield
    progress.set_enabled(False)


@pytest.fixture(scope="session")
def trained_pair(tmp_path_factory) -> Path:
    """root/checkpoints holds vae_epoch2.pt, last.pt and prior_final.pt; root/audio the input."""
    root = tmp_path_factory.mktemp("generation")
    for index, kind in enumerate(("pluck", "fm", "pad", "noise_sweep")):
        audio, _ = make_texture(kind, index, sample_rate=16000, duration_seconds=3.0)
        write(root / "audio" / f"{kind}_{index}.wav", audio[None], 16000)
    settings = PrepSettings(sample_rate=16000, segment_seconds=1.0)
    prepare(root / "audio", root / "data", settings, val_fraction=0.3, workers=1)
    config = tiny_config(root, "train.epochs=2")
    from helius.train.prior_task import train_prior
    from helius.train.trainer import fit
    from helius.train.vae_task import VAETask

    fit(config, VAETask(config))
    train_prior(tiny_config(root, "prior.train.max_steps=20"), root / "checkpoints" / "last.pt")
    return root
