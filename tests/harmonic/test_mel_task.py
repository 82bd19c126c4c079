"""Training the mel VAE through the shared trainer: the manual's checkpoint names, beta annealed
by epoch, a validation that beats the static average patch on held-out audio, a checkpoint that
reloads to the same output, and the registry and `helius train` knowing the kind."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from helpers import write

from helius import progress, registry
from helius.audio.synth import make_texture
from helius.cli import main
from helius.config import validate_config
from helius.data.dataset import SegmentDataset
from helius.data.prep import prepare
from helius.data.segment import PrepSettings
from helius.harmonic.mel_task import MelVAETask
from helius.harmonic.mel_vae import MelVAE
from helius.models.checkpoint import load_checkpoint, load_model
from helius.train.trainer import fit

SAMPLE_RATE = 8000
TINY_MODEL = {
    "kind": "mel_vae",
    "n_fft": 256,
    "hop_length": 64,
    "n_mels": 24,
    "segment_length": 0.5,
    "architecture": "mlp",
    "hidden_dims": [128, 64],
    "latent_dim": 8,
}


def tiny_config(root: Path, **train):
    return validate_config(
        {
            "data": {
                "train_index": str(root / "data" / "train_index.txt"),
                "val_index": str(root / "data" / "val_index.txt"),
                "sample_rate": SAMPLE_RATE,
                "segment_seconds": 1.0,
            },
            "model": TINY_MODEL,
            "train": {
                "batch_size": 4,
                "learning_rate": 2e-3,
                "warmup_steps": 0,
                "device": "cpu",
                "beta_start": 0.0,
                "beta_end": 1.0,
                "beta_steps": 4,
                "max_steps": None,
                "checkpoint_dir": str(root / "checkpoints"),
                "log_dir": str(root / "runs"),
                **train,
            },
        }
    )


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mel_task")
    for index, kind in enumerate(("pluck", "fm", "pad") * 8):
        audio, _ = make_texture(kind, index, sample_rate=SAMPLE_RATE, duration_seconds=2.0)
        write(root / "audio" / f"{kind}_{index}.wav", audio[None], SAMPLE_RATE)
    settings = PrepSettings(sample_rate=SAMPLE_RATE, segment_seconds=1.0)
    prepare(root / "audio", root / "data", settings, val_fraction=0.25, workers=1)
    return root


@pytest.fixture(scope="module")
def trained(prepared):
    config = tiny_config(prepared, epochs=60, val_every_steps=10_000, keep_last=2)
    task = MelVAETask(config)
    result = fit(config, task)
    return config, task, result


def test_checkpoints_carry_the_manuals_names(trained):
    config, _, result = trained
    folder = Path(config.train.checkpoint_dir)
    names = sorted(path.name for path in folder.glob("*.pt"))
    assert names == [
        "harmonic_vae_best.pt",
        "harmonic_vae_epoch_59.pt",
        "harmonic_vae_epoch_60.pt",
        "harmonic_vae_last.pt",
    ]
    assert result.epoch == 60
    assert load_checkpoint(folder / "harmonic_vae_best.pt", kind="mel_vae")["kind"] == "mel_vae"


def test_beta_follows_the_epoch_not_the_step(prepared):
    config = tiny_config(prepared, epochs=1, beta_start=0.2, beta_end=1.0, beta_steps=4)
    task = MelVAETask(config)
    train_set, _ = task.datasets()
    model = task.build_model()
    batch = torch.stack([train_set[0], train_set[1]])
    seen = []
    for epoch in (0, 2, 6):
        task.set_epoch(train_set, epoch)
        seen.append(task.loss(model, batch, step=999)[1]["beta"])
    assert seen == pytest.approx([0.2, 0.6, 1.0])
    assert train_set.epoch == 6  # new crops each epoch, as every task's training set


def test_training_beats_the_static_average_patch_on_held_out_audio(trained):
    config, _, result = trained
    metrics = result.last_validation
    # The validation's own baseline: the held-out set's average patch (follows nothing).
    # (60 epochs of 30 one-second segments; measured 0.75 with mlp and 0.74 with conv)
    assert metrics["recon_vs_static"] < 0.85, metrics
    assert 0 <= metrics["sparsity"] <= 1
    assert metrics["active_dims"] >= 1
    # Independent of validate(): recompute the held-out error from the saved checkpoint.
    model, _ = load_model(Path(config.train.checkpoint_dir) / "harmonic_vae_best.pt", "mel_vae")
    assert isinstance(model, MelVAE)
    held_out = SegmentDataset(config.data.val_index, SAMPLE_RATE, 4000, 1, random_crop=False)
    with torch.no_grad():
        patches = model.features(torch.stack([held_out[i] for i in range(len(held_out))]))
        rebuilt = model.decode(model.encode(patches)[0])
    error = (rebuilt - patches).abs().mean().item()
    static = (patches.mean(0, keepdim=True) - patches).abs().mean().item()
    assert error < 0.85 * static


def test_an_untrained_model_does_not_pass_the_same_bar(prepared):
    config = tiny_config(prepared, epochs=1)
    task = MelVAETask(config)
    _, val_set = task.datasets()
    torch.manual_seed(0)
    validation = task.validate(task.build_model(), iter([torch.stack(list(val_set))]))
    assert validation.metrics["recon_vs_static"] > 1.0
    assert task.validation_warning(validation, step=0) is None  # epoch 0: too early to warn
    task.epoch = 3
    assert "not following its input" in task.validation_warning(validation, step=100)


def test_registry_and_helius_train_know_the_kind(prepared, tmp_path, capsys):
    entry = registry.get("mel_vae")
    assert entry.task_type() is MelVAETask and entry.checkpoint_kind == "mel_vae"
    data = prepared / "data"
    code = main(
        [
            "train",
            "--quiet",
            *(
                arg
                for item in [
                    "model.kind=mel_vae",
                    f"data.train_index={data / 'train_index.txt'}",
                    f"data.val_index={data / 'val_index.txt'}",
                    f"data.sample_rate={SAMPLE_RATE}",
                    "model.n_fft=256",
                    "model.hop_length=64",
                    "model.n_mels=24",
                    "model.segment_length=0.5",
                    "model.architecture=mlp",
                    "model.hidden_dims=[32]",
                    "model.latent_dim=4",
                    "train.batch_size=4",
                    "train.max_steps=3",
                    "train.device=cpu",
                    f"train.checkpoint_dir={tmp_path / 'ck'}",
                    f"train.log_dir={tmp_path / 'runs'}",
                ]
                for arg in ("--set", item)
            ),
        ]
    )
    assert code == 0
    assert "trained mel_vae to step 3" in capsys.readouterr().out
    assert (tmp_path / "ck" / "harmonic_vae_last.pt").is_file()


def test_each_epoch_prints_the_manuals_summary_line(prepared, capsys):
    config = tiny_config(prepared, epochs=2, validate_every_epoch=True, val_every_steps=10_000)
    config.train.checkpoint_dir += "_summary"
    progress.set_enabled(True)  # as the CLI does without --quiet
    result = fit(config, MelVAETask(config))
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("Epoch")]
    assert len(lines) == 2, lines
    pattern = (
        r"Epoch 2/2, Train Loss: [\d.]+, Val Loss: [\d.]+, Recon: [\d.]+, KL: [\d.]+, "
        r"LR: [\d.e-]+, Sparsity: [\d.]+"
    )
    assert re.fullmatch(pattern, lines[1]), lines[1]
    assert f"Val Loss: {result.last_validation['score']:.4f}" in lines[1]


def test_resume_from_an_epoch_checkpoint_continues_from_it(prepared, tmp_path):
    config = tiny_config(prepared, epochs=3, val_every_steps=10_000)
    config.train.checkpoint_dir = str(tmp_path / "ck")
    fit(config, MelVAETask(config))
    folder = Path(config.train.checkpoint_dir)
    assert sorted(p.name for p in folder.glob("harmonic_vae_epoch_*.pt"))[-1].endswith("_3.pt")
    config.train.epochs = 4
    result = fit(config, MelVAETask(config), resume=folder / "harmonic_vae_epoch_2.pt")
    assert result.epoch == 4
    steps_per_epoch = load_checkpoint(folder / "harmonic_vae_epoch_2.pt")["step"] // 2
    assert result.step == 4 * steps_per_epoch


def test_augment_changes_training_patches_only_and_keeps_their_shape(prepared):
    plain = MelVAETask(tiny_config(prepared, epochs=1))
    augmented = MelVAETask(tiny_config(prepared, epochs=1, augment=True, augment_strength=1.0))
    (train_plain, val_plain), (train_aug, val_aug) = plain.datasets(), augmented.datasets()
    changed = 0
    for index in range(4):
        a, b = train_plain[index], torch.as_tensor(train_aug[index])
        assert a.shape == b.shape  # length and channels kept
        changed += not torch.allclose(a, b)
    assert changed >= 3  # gain is drawn for every patch at strength 1
    assert torch.equal(val_plain[0], val_aug[0])  # validation audio untouched
    first = torch.as_tensor(train_aug[0])
    train_aug.set_epoch(1)
    assert not torch.allclose(first, torch.as_tensor(train_aug[0]))  # new draws each epoch
