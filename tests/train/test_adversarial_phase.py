"""Adversarial fine-tuning inside the VAE trainer: a tiny wave VAE trains through the switch,
freezes its encoder there, and a run resumed after the switch matches an uninterrupted one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import tiny_config, write

from helius.audio.synth import make_texture
from helius.data.prep import prepare
from helius.data.segment import PrepSettings
from helius.models.checkpoint import load_checkpoint
from helius.train.trainer import fit
from helius.train.vae_task import VAETask

SWITCH = 3
PHASE_TWO = [
    f"train.adversarial.start_step={SWITCH}",
    "train.adversarial.fft_sizes=[256,128]",
    "train.adversarial.periods=[2,3]",
    "train.adversarial.channels=4",
    "train.val_every_steps=1000",
    "train.batch_size=2",
    "train.crop_seconds=0.25",
]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("adversarial")
    for index, kind in enumerate(("pluck", "fm", "pad")):
        audio, _ = make_texture(kind, index, sample_rate=16000, duration_seconds=2.0)
        write(root / "audio" / f"{kind}.wav", audio[None], 16000)
    settings = PrepSettings(sample_rate=16000, segment_seconds=1.0)
    prepare(root / "audio", root / "data", settings, val_fraction=0.3, workers=1)
    return root


def _fit(root: Path, run: str, *overrides: str, resume: bool = False):
    config = tiny_config(
        root,
        *PHASE_TWO,
        f"train.checkpoint_dir={root / run / 'checkpoints'}",
        f"train.log_dir={root / run / 'runs'}",
        "train.epochs=null",  # the max_steps given below end each run
        *overrides,
    )
    task = VAETask(config)
    return fit(config, task, resume=resume), task


def test_phase_two_trains_the_decoder_against_discriminators(data_root) -> None:
    before, _ = _fit(data_root, "short", f"train.max_steps={SWITCH}")
    encoder_before = {k: v.clone() for k, v in before.model.encoder.state_dict().items()}
    decoder_before = {k: v.clone() for k, v in before.model.decoder.state_dict().items()}
    after, task = _fit(data_root, "short", f"train.max_steps={SWITCH + 3}", resume=True)
    # Phase 1 saved no discriminator; phase 2's checkpoint carries it and its optimiser.
    assert after.step == SWITCH + 3
    state = load_checkpoint(data_root / "short" / "checkpoints" / "last.pt")["task_state"]
    assert {"discriminator", "optimizer"} <= set(state)
    assert state["optimizer"]["state"], "the discriminator's optimiser took steps"
    # The encoder is frozen from the switch on; the decoder keeps learning.
    for name, value in after.model.encoder.state_dict().items():
        assert torch.equal(value, encoder_before[name]), name
    changed = [
        name
        for name, value in after.model.decoder.state_dict().items()
        if not torch.equal(value, decoder_before[name])
    ]
    assert changed, "phase 2 must still train the decoder"
    assert task.adversarial.adversary is not None


def test_phase_one_checkpoint_has_no_discriminator(data_root) -> None:
    _fit(data_root, "phase_one", f"train.max_steps={SWITCH - 1}")
    payload = load_checkpoint(data_root / "phase_one" / "checkpoints" / "last.pt")
    assert payload["task_state"] == {}


def test_resume_after_the_switch_is_exact(data_root) -> None:
    steps = SWITCH + 4
    whole, _ = _fit(data_root, "whole", f"train.max_steps={steps}")
    _fit(data_root, "split", f"train.max_steps={SWITCH + 1}")
    resumed, _ = _fit(data_root, "split", f"train.max_steps={steps}", resume=True)
    for name, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    whole_d = load_checkpoint(data_root / "whole" / "checkpoints" / "last.pt")["task_state"]
    split_d = load_checkpoint(data_root / "split" / "checkpoints" / "last.pt")["task_state"]
    for name, value in whole_d["discriminator"].items():
        assert torch.equal(value, split_d["discriminator"][name]), name
