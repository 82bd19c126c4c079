"""A tiny trained streaming VAE and GRU prior, shared by the generation tests (trained once)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import write

from helius.audio.synth import make_texture
from helius.config import load_config
from helius.data.prep import prepare
from helius.data.segment import PrepSettings
from helius.train.prior_task import train_prior
from helius.train.trainer import fit
from helius.train.vae_task import VAETask

REPO = Path(__file__).resolve().parents[2]
RATE = 16000


def tiny_config(root: Path, *overrides: str):
    return load_config(
        REPO / "configs" / "tiny.yaml",
        [
            f"data.train_index={root / 'data' / 'train_index.txt'}",
            f"data.val_index={root / 'data' / 'val_index.txt'}",
            f"train.checkpoint_dir={root / 'checkpoints'}",
            f"train.log_dir={root / 'runs'}",
            "train.device=cpu",
            "model.wave.noise_branch=false",  # so streamed output equals offline exactly
            "prior.chunk_frames=16",
            "prior.chunks=2",
            "prior.batch_size=4",
            *overrides,
        ],
    )


@pytest.fixture(scope="session")
def trained_pair(tmp_path_factory) -> Path:
    """root/checkpoints holds vae_epoch2.pt, last.pt and prior_final.pt; root/audio the input."""
    root = tmp_path_factory.mktemp("generation")
    for index, kind in enumerate(("pluck", "fm", "pad", "noise_sweep")):
        audio, _ = make_texture(kind, index, sample_rate=RATE, duration_seconds=3.0)
        write(root / "audio" / f"{kind}_{index}.wav", audio[None], RATE)
    settings = PrepSettings(sample_rate=RATE, segment_seconds=1.0)
    prepare(root / "audio", root / "data", settings, val_fraction=0.3, workers=1)
    config = tiny_config(root, "train.epochs=2")
    fit(config, VAETask(config))
    train_prior(tiny_config(root, "prior.max_steps=20"), root / "checkpoints" / "last.pt")
    return root
