"""`helius train`, `recon` and `eval` end to end on tiny prepared data, and their bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers import snapshot, write
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from helius.audio.synth import make_oneshot, make_texture
from helius.cli import main
from helius.models.checkpoint import load_checkpoint, load_vae, save_checkpoint

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "configs" / "tiny.yaml")
RATE = 16000


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """Five 3-second textures at 16 kHz, prepared into 1-second segments."""
    root = tmp_path_factory.mktemp("train_data")
    for index, kind in enumerate(("pluck", "fm", "pad", "noise_sweep", "pluck")):
        sound = make_texture(kind, index, sample_rate=RATE, duration_seconds=3.0)
        write(root / "audio" / f"{kind}_{index}.wav", sound[0][None], RATE)
    code = main(
        [
            "prep",
            "--input_dir",
            str(root / "audio"),
            "--output_dir",
            str(root / "data"),
            "--segment_length",
            "1.0",
            "--sample_rate",
            str(RATE),
            "--val_fraction",
            "0.3",
            "--workers",
            "1",
            "--quiet",
        ]
    )
    assert code == 0
    return root


def tiny_args(root: Path, run_name: str, *overrides: str) -> list[str]:
    settings = [
        f"data.train_index={root / 'data' / 'train_index.txt'}",
        f"data.val_index={root / 'data' / 'val_index.txt'}",
        f"train.checkpoint_dir={root / run_name / 'checkpoints'}",
        f"train.log_dir={root / run_name / 'runs'}",
        "train.device=cpu",
        "train.log_audio_every_steps=2",
        "train.val_every_steps=3",
        *overrides,
    ]
    return ["--config", TINY, *(arg for s in settings for arg in ("--set", s)), "--quiet"]


@pytest.fixture(scope="module")
def trained(prepared) -> Path:
    """A tiny wave VAE trained for two epochs by the CLI."""
    assert main(["train", *tiny_args(prepared, "run", "train.epochs=2")]) == 0
    return prepared / "run"


def test_train_writes_seed_named_checkpoints_that_rebuild_the_model(trained):
    checkpoints = trained / "checkpoints"
    names = sorted(p.name for p in checkpoints.iterdir())
    assert names == ["best.pt", "last.pt", "vae_epoch1.pt", "vae_epoch2.pt"]
    payload = load_checkpoint(checkpoints / "last.pt", kind="vae")
    assert payload["epoch"] == 2 and payload["step"] > 0
    assert payload["config"]["model"]["wave"]["capacity"] == 8  # the tiny preset, resolved
    assert {"active_dims", "pca_dims_90"} <= set(payload["latent_health"])
    model, config = load_vae(checkpoints / "last.pt")
    assert config.data.sample_rate == RATE and model.hop_samples == 128
    assert not model.training
    state = payload["model"]
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_train_logs_losses_beta_lr_grad_norm_audio_and_spectrograms(trained):
    [events] = list((trained / "runs").glob("events.out.tfevents.*"))
    accumulator = EventAccumulator(str(events), size_guidance={"images": 0, "audio": 0})
    accumulator.Reload()
    tags = accumulator.Tags()
    for scalar in ("train/loss", "train/kl", "train/beta", "train/lr", "train/grad_norm"):
        assert scalar in tags["scalars"]
    assert {"val/mrstft", "val/si_sdr", "val/active_dims"} <= set(tags["scalars"])
    assert "audio/reconstruction" in tags["audio"]
    assert "audio/reconstruction_spectrogram" in tags["images"]
    assert "latent/kl_per_dim" in tags["histograms"]
    losses = [event.value for event in accumulator.Scalars("train/loss")]
    assert all(np.isfinite(losses))


def test_train_output_names_what_happened(prepared, capsys):
    code, out, _ = run(capsys, "train", *tiny_args(prepared, "run_out", "train.max_steps=2"))
    assert code == 0
    assert "trained wave_vae to step 2" in out and "audio-s/s" in out
    assert "validation: " in out and "mrstft" in out


def logged_scalars(run_dir: Path, prefix: str) -> dict[tuple[str, int], float]:
    """Every scalar under `prefix` in a run's TensorBoard files (a resumed run writes two)."""
    values = {}
    for events in sorted((run_dir / "runs").glob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            if tag.startswith(prefix):
                for event in accumulator.Scalars(tag):
                    assert (tag, event.step) not in values, f"{tag} logged twice at {event.step}"
                    values[tag, event.step] = event.value
    return values


def test_resume_through_the_cli_matches_an_uninterrupted_run(prepared):
    """The tiny wave VAE trained 8 steps in one go, and 4 steps then `--resume` to 8 (mid-epoch,
    after a validation and logged audio): the same losses at every step, the same weights."""
    steps = 8  # three batches an epoch: step 4 is mid-epoch

    def train(run_name: str, max_steps: int, *extra: str) -> None:
        limits = ("train.epochs=null", f"train.max_steps={max_steps}")
        assert main(["train", *tiny_args(prepared, run_name, *limits), *extra]) == 0

    train("run_whole", steps)
    train("run_halves", steps // 2)
    halfway = load_checkpoint(prepared / "run_halves" / "checkpoints" / "last.pt")
    assert halfway["step"] == steps // 2 and halfway["batches_in_epoch"] > 0  # mid-epoch
    train("run_halves", steps, "--resume")

    whole, halves = (prepared / name for name in ("run_whole", "run_halves"))
    losses = logged_scalars(whole, "train/")
    assert {step for _, step in losses} == set(range(1, steps + 1))
    assert {"train/loss", "train/kl", "train/beta"} <= {tag for tag, _ in losses}
    assert logged_scalars(halves, "train/") == losses  # bit-identical on the CPU
    # Validations agree; the interrupted run also validated where its first part stopped.
    validations, resumed = logged_scalars(whole, "val/"), logged_scalars(halves, "val/")
    assert {step for _, step in validations} == {3, 6, steps}
    assert {key: resumed[key] for key in validations} == validations
    assert {step for _, step in resumed.keys() - validations.keys()} == {steps // 2}
    final = [load_checkpoint(run / "checkpoints" / "last.pt") for run in (whole, halves)]
    assert final[0]["step"] == final[1]["step"] == steps
    assert final[0]["model"].keys() == final[1]["model"].keys()
    for name, value in final[0]["model"].items():
        assert torch.equal(value, final[1]["model"][name]), name


def test_train_says_at_start_what_will_stop_it(prepared, capsys):
    args = [a for a in tiny_args(prepared, "run_limits", "train.max_steps=2") if a != "--quiet"]
    code, _, err = run(capsys, "train", *args, "--set", "train.max_minutes=5")
    assert code == 0
    assert "training stops at step 2 (train.max_steps), after 2 epochs" in err
    assert "or after 5 min (train.max_minutes), whichever comes first" in err


def test_the_default_config_runs_for_steps_with_the_kl_warm_up_inside():
    from helius.config import load_config

    train = load_config(REPO / "configs" / "config.yaml").train
    assert train.max_steps is not None and train.max_steps >= 2 * train.kl.warmup_steps


def test_recon_writes_the_reconstruction_and_leaves_the_input(trained, prepared, capsys):
    source = next((prepared / "audio").glob("*.wav"))
    before = snapshot(prepared / "audio")
    output = prepared / "recon" / "out.wav"
    code, out, _ = run(
        capsys,
        "recon",
        "--vae_ckpt",
        str(trained / "checkpoints" / "best.pt"),
        "--input",
        str(source),
        "--output",
        str(output),
    )
    assert code == 0 and "MR-STFT distance" in out
    info, original = sf.info(str(output)), sf.info(str(source))
    assert info.samplerate == RATE and info.frames == original.frames
    assert snapshot(prepared / "audio") == before
    assert not list(output.parent.glob("*.tmp"))


def test_recon_keeps_the_inputs_rate_and_channels(trained, prepared, capsys, tmp_path):
    """A 44.1 kHz stereo file through the 16 kHz mono model comes back at 44.1 kHz in stereo
    and as long; --sample_rate picks another output rate."""
    rate, seconds = 44100, 1.5
    loud = make_texture("pluck", 3, sample_rate=rate, duration_seconds=seconds)[0]
    stereo = np.stack([loud, 0.01 * loud])
    source = write(tmp_path / "stereo.wav", stereo, rate)
    output = tmp_path / "out.wav"
    checkpoint = str(trained / "checkpoints" / "best.pt")
    code, _, _ = run(
        capsys, "recon", "--vae_ckpt", checkpoint, "--input", str(source), "--output", str(output)
    )
    assert code == 0
    rebuilt, out_rate = sf.read(str(output), always_2d=True)
    assert out_rate == rate and rebuilt.shape == (len(loud), 2)
    code, _, _ = run(
        capsys,
        "recon",
        "--vae_ckpt",
        checkpoint,
        "--input",
        str(source),
        "--output",
        str(output),
        "--sample_rate",
        "22050",
    )
    assert code == 0
    info = sf.info(str(output))
    assert info.samplerate == 22050 and info.channels == 2
    assert abs(info.frames - seconds * 22050) <= 1


def test_eval_agrees_with_the_validation_stored_in_best(trained, prepared, capsys):
    best = trained / "checkpoints" / "best.pt"
    code, out, _ = run(
        capsys,
        "eval",
        "--vae_ckpt",
        str(best),
        "--index",
        str(prepared / "data" / "val_index.txt"),
        "--json",
    )
    assert code == 0
    measured = json.loads(out)
    stored = load_checkpoint(best)["metrics"]
    for name in (
        "mrstft",
        "mel",
        "si_sdr",
        "active_dims",
        "loudness_corr",
        "spectral_change_corr",
        "sensitivity_zero_db",
        "sensitivity_shuffle_db",
    ):
        assert measured[name] == pytest.approx(stored[name], rel=1e-5, abs=1e-6)
    assert isinstance(measured["ignores_latent"], bool)
    code, out, _ = run(
        capsys, "eval", "--vae_ckpt", str(best), "--index", str(prepared / "data" / "val_index.txt")
    )
    assert code == 0 and "loudness_corr" in out and "sensitivity_zero_db" in out


def test_clip_preset_trains_on_one_shots(tmp_path, capsys):
    for index, kind in enumerate(("kick", "snare", "hat", "tom", "clap", "kick")):
        sound = make_oneshot(kind, index, sample_rate=RATE, duration_seconds=0.25)
        write(tmp_path / "shots" / f"{kind}_{index}.wav", sound[0][None], RATE)
    assert (
        main(
            [
                "prep",
                "--input_dir",
                str(tmp_path / "shots"),
                "--output_dir",
                str(tmp_path / "data"),
                "--segment_length",
                "0.25",
                "--sample_rate",
                str(RATE),
                "--val_fraction",
                "0.3",
                "--workers",
                "1",
                "--quiet",
            ]
        )
        == 0
    )
    settings = [
        f"data.train_index={tmp_path / 'data' / 'train_index.txt'}",
        f"data.val_index={tmp_path / 'data' / 'val_index.txt'}",
        f"data.sample_rate={RATE}",
        "data.segment_seconds=0.25",
        "model.clip.clip_seconds=0.25",
        "model.clip.channels=[8,16]",
        "model.clip.strides=[4,4]",
        "model.clip.hidden=16",
        "model.latent_dim=4",
        "train.batch_size=2",
        "train.max_steps=3",
        f"train.checkpoint_dir={tmp_path / 'ckpt'}",
        f"train.log_dir={tmp_path / 'runs'}",
    ]
    argv = ["train", "--config", str(REPO / "configs" / "clip.yaml"), "--quiet"]
    code, out, err = run(capsys, *argv, *(a for s in settings for a in ("--set", s)))
    assert code == 0, err
    assert "trained clip_vae to step 3" in out
    model, config = load_vae(tmp_path / "ckpt" / "last.pt")
    assert config.model.kind == "clip_vae" and model.latent_dim == 4


# --- bad input ----------------------------------------------------------------------------


def test_unknown_config_key_names_the_field(prepared, capsys):
    code, _, err = run(capsys, "train", *tiny_args(prepared, "bad", "train.batchsize=3"))
    assert code == 1
    assert "train.batchsize: unknown key" in err and "batch_size" in err


def test_missing_and_empty_indexes_say_how_to_prepare_data(prepared, tmp_path, capsys):
    missing = tmp_path / "nowhere" / "train_index.txt"
    code, _, err = run(capsys, "train", *tiny_args(prepared, "bad", f"data.train_index={missing}"))
    assert code == 1 and f"index {missing} does not exist" in err and "helius prep" in err
    empty = tmp_path / "empty_index.txt"
    empty.write_text("\n")
    code, _, err = run(capsys, "train", *tiny_args(prepared, "bad", f"data.train_index={empty}"))
    assert code == 1 and "lists no segments" in err


def test_checkpoints_of_other_kinds_or_architectures_are_refused(trained, tmp_path, capsys):
    source = trained / "checkpoints" / "last.pt"
    payload = load_checkpoint(source)

    prior = tmp_path / "prior.pt"
    save_checkpoint(prior, {**payload, "kind": "prior"})
    other = json.loads(json.dumps(payload["config"]))
    other["model"]["wave"]["capacity"] = 16
    reshaped = tmp_path / "reshaped.pt"
    save_checkpoint(reshaped, {**payload, "config": other})
    not_a_checkpoint = tmp_path / "notes.pt"
    not_a_checkpoint.write_bytes(b"just some bytes")

    expected = {
        prior: "holds a prior model, but a vae checkpoint is needed",
        reshaped: "weights do not fit the wave_vae architecture",
        not_a_checkpoint: "is not a readable Helius checkpoint",
        tmp_path / "missing.pt": "does not exist",
    }
    audio = write(tmp_path / "in.wav", np.zeros((1, RATE), dtype=np.float32), RATE)
    for path, message in expected.items():
        argv = ["recon", "--vae_ckpt", str(path), "--input", str(audio)]
        code, _, err = run(capsys, *argv, "--output", str(tmp_path / "out.wav"))
        assert code == 1 and message in err, err
    assert not (tmp_path / "out.wav").exists()
