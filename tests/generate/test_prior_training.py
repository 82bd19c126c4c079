"""Training the prior: latent runs, the cache, checkpoints, and the seed's command line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from helpers import REPO, tiny_config

from helius.cli import main
from helius.errors import ConfigError, DataError
from helius.models.checkpoint import load_checkpoint, load_prior, load_vae
from helius.train.latents import contiguous_runs, load_or_encode
from helius.train.prior_task import LatentWindows


def test_consecutive_segments_of_a_file_form_one_run():
    paths = [Path(p) for p in ("a/00000.wav", "b/00000.wav", "a/00001.wav", "a/00003.wav")]
    runs = contiguous_runs([*paths, Path("loose.wav")])
    assert [[p.as_posix() for p in run] for run in runs] == [
        ["a/00000.wav", "a/00001.wav"],
        ["a/00003.wav"],
        ["b/00000.wav"],
        ["loose.wav"],
    ]


def test_runs_are_encoded_as_one_continuous_signal(trained_pair):
    vae, _config = load_vae(trained_pair / "checkpoints" / "last.pt")
    index = trained_pair / "data" / "train_index.txt"
    latents = load_or_encode(
        vae, trained_pair / "checkpoints" / "last.pt", index, index, 16000, 1, trained_pair / "c"
    )
    # 3-second files cut into 1-second segments: 3 x 16000 samples = 375 whole frames of 128.
    assert all(run.shape == (4, 375) for run in latents.train)
    # Encoding the first file's segments as one signal gives the same latents.
    import soundfile as sf

    first_run = sorted(p for p in (index.parent / "segments").iterdir())[0]
    audio = torch.cat(
        [torch.from_numpy(sf.read(str(p), dtype="float32")[0]) for p in sorted(first_run.iterdir())]
    )
    mu, _ = vae.encode(audio[None, None, : 375 * 128])
    assert any(torch.allclose(run, mu[0], atol=1e-5) for run in latents.train)


def test_prior_checkpoints_sit_beside_the_vae_ones(trained_pair):
    checkpoints = trained_pair / "checkpoints"
    for name in ("prior_final.pt", "prior_last.pt", "last.pt", "vae_epoch2.pt"):
        assert (checkpoints / name).is_file(), name
    assert load_checkpoint(checkpoints / "last.pt")["kind"] == "vae"  # not overwritten
    prior, config = load_prior(checkpoints / "prior_final.pt")
    assert config.model.latent_dim == prior.latent_dim == 4
    assert float(prior.latent_std.min()) > 0
    assert "nll_per_frame" in load_checkpoint(checkpoints / "prior_last.pt")["metrics"]


def test_seed_command_trains_the_prior_and_reuses_the_cache(trained_pair, tmp_path, capsys):
    vae = tmp_path / "vae_epoch2.pt"
    shutil.copy(trained_pair / "checkpoints" / "vae_epoch2.pt", vae)
    config = tiny_config(trained_pair, f"train.checkpoint_dir={tmp_path}")
    settings = [
        f"data.train_index={config.data.train_index}",
        f"data.val_index={config.data.val_index}",
        f"prior.train.checkpoint_dir={tmp_path}",
        f"prior.train.log_dir={tmp_path / 'runs'}",
        "prior.train.max_steps=2",
        "prior.chunk_frames=16",
        "prior.chunks=2",
    ]
    argv = ["train", "--config", str(REPO / "configs" / "tiny.yaml"), "--quiet"]
    argv += [a for s in settings for a in ("--set", s)]
    argv += ["--train_prior_only", "--vae_ckpt", str(vae)]
    assert main(argv) == 0
    assert "(encoded:" in capsys.readouterr().out
    assert (tmp_path / "prior_final.pt").is_file()
    assert main(["train-prior", *argv[1:-3], "--vae_ckpt", str(vae)]) == 0
    assert "(cached:" in capsys.readouterr().out
    # Another VAE checkpoint invalidates the cache (and the stale one is removed).
    shutil.copy(trained_pair / "checkpoints" / "vae_epoch1.pt", vae)
    assert main(argv) == 0
    assert "(encoded:" in capsys.readouterr().out
    assert len(list((tmp_path / "latent_cache").glob("latents-*.pt"))) == 1


def test_train_prior_only_needs_a_vae_checkpoint(capsys):
    assert main(["train", "--train_prior_only", "--quiet"]) == 1
    assert "--train_prior_only needs --vae_ckpt" in capsys.readouterr().err


def test_a_clip_vae_has_no_latent_sequences(trained_pair, tmp_path):
    from helius.models import build_model
    from helius.train.latents import encode_runs

    config = tiny_config(trained_pair, "model.kind=clip_vae")
    model = build_model(config.model, 16000)
    with pytest.raises(ConfigError, match="wave_vae checkpoint"):
        encode_runs(model, Path(config.data.train_index), 16000, 1, "train")


def test_windows_longer_than_every_run_are_a_clear_error():
    with pytest.raises(DataError, match="lower prior.chunk_frames"):
        LatentWindows([torch.zeros(4, 10)], 65, True)


def test_train_prior_takes_its_data_and_folder_from_the_vae_unless_set(
    trained_pair, tmp_path, capsys
):
    """--config's data paths (here tiny.yaml's data/..., absent in this folder) do not decide
    which latents the prior learns: the VAE checkpoint's indexes do (#14 item 4)."""
    from helius.cli.core.generate import data_of_the_vae
    from helius.config import load_config

    vae = trained_pair / "checkpoints" / "last.pt"
    tiny = REPO / "configs" / "tiny.yaml"
    vae_data = trained_pair / "data"
    config = data_of_the_vae(load_config(tiny), vae, [])
    assert config.data.train_index == str(vae_data / "train_index.txt")
    assert config.prior.train.checkpoint_dir == str(trained_pair / "checkpoints")
    chosen = data_of_the_vae(
        load_config(tiny, ["data.val_index=mine.txt"]), vae, ["data.val_index=mine.txt"]
    )
    assert chosen.data.val_index == "mine.txt"
    assert chosen.data.train_index == str(vae_data / "train_index.txt")

    settings = [
        f"prior.train.checkpoint_dir={tmp_path}",
        f"prior.train.log_dir={tmp_path / 'runs'}",
    ]
    settings += ["prior.train.max_steps=2", "prior.chunk_frames=16", "prior.chunks=2"]
    argv = ["train-prior", "--config", str(tiny), "--vae_ckpt", str(vae), "--quiet"]
    assert main([*argv, *(a for s in settings for a in ("--set", s))]) == 0
    printed = capsys.readouterr().out
    assert f"encoding the VAE's latents of {vae_data / 'train_index.txt'}" in printed
    assert f"the prior is saved in {tmp_path}" in printed
    assert (tmp_path / "prior_final.pt").is_file()
