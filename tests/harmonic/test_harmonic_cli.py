"""`helius harmonic --mode ...` with the manual's flags: the data set layouts through the one prep,
training with the manual's file names and epoch lines, its flat JSON config under the flags,
transfer learning from another run, validate_data, and `python -m helius.harmonic`."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers import write

from helius.audio.synth import make_texture
from helius.cli import main
from helius.models.checkpoint import load_checkpoint

RATE = 8000
# The tiny model every test here trains (the manual's flags, small values).
TINY = [
    "--sample_rate", "8000", "--n_fft", "256", "--hop_length", "64", "--n_mels", "24",
    "--segment_length", "0.5", "--hidden_dims", "64,32", "--latent_dim", "8",
    "--batch_size", "4", "--device", "cpu", "--workers", "1", "--use_tensorboard", "False",
]  # fmt: skip


def texture_folder(folder: Path, names: list[str], seconds: float = 1.5) -> Path:
    kinds = ("pluck", "fm", "pad")
    for index, name in enumerate(names):
        audio, _ = make_texture(kinds[index % 3], index, sample_rate=RATE, duration_seconds=seconds)
        write(folder / name, audio[None], RATE)
    return folder


@pytest.fixture(scope="module")
def custom(tmp_path_factory) -> Path:
    names = [f"{genre}/clip{i}.wav" for genre in ("drone", "bells") for i in range(5)]
    return texture_folder(tmp_path_factory.mktemp("custom") / "audio", names)


def manifest(folder: Path) -> list[dict]:
    lines = (folder / "manifest.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line]


def test_preprocess_custom_tags_subfolders(custom, tmp_path, capsys):
    out = tmp_path / "prepared"
    args = ["harmonic", "--mode", "preprocess", "--custom_dir", str(custom)]
    assert main([*args, "--output_dir", str(out), *TINY, "--validation_split", "0.2"]) == 0
    assert "prepared 10 of 10 audio files" in capsys.readouterr().out
    records = manifest(out)
    assert {record["tags"]["folder"] for record in records} == {"drone", "bells"}
    assert len(records) == 30  # 1.5 s files, 0.5 s segments
    assert (out / "val_index.txt").read_text().strip()


def test_preprocess_gtzan_and_maestro_layouts(tmp_path):
    gtzan = texture_folder(
        tmp_path / "gtzan" / "genres",
        [f"{genre}/{genre}.0000{i}.wav" for genre in ("blues", "jazz") for i in range(2)],
    )
    # GTZAN's check wants all ten genre folders; the other eight hold one clip each.
    others = ("classical", "country", "disco", "hiphop", "metal", "pop", "reggae", "rock")
    texture_folder(gtzan, [f"{genre}/{genre}.00000.wav" for genre in others])
    out = tmp_path / "out_gtzan"
    base = ["harmonic", "--mode", "preprocess", *TINY]
    assert main([*base, "--dataset", "gtzan", "--gtzan_dir", str(gtzan.parent), "--output_dir",
                 str(out)]) == 0  # fmt: skip
    genres = {record["tags"]["genre"] for record in manifest(out)}
    assert genres == {"blues", "jazz", *others}

    root = tmp_path / "maestro" / "maestro-v3.0.0"
    rows = [("train", "2004/a.wav"), ("train", "2004/b.wav"), ("validation", "2006/c.wav"),
            ("test", "2008/d.wav")]  # fmt: skip
    texture_folder(root, [path for _, path in rows])
    columns = ["canonical_composer", "canonical_title", "split", "year", "midi_filename",
               "audio_filename", "duration"]  # fmt: skip
    with open(root / "maestro-v3.0.0.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for index, (split, path) in enumerate(rows):
            midi = path.replace(".wav", ".midi")
            writer.writerow([f"Composer {index}", "Piece", split, path[:4], midi, path, 1.5])
    (root / "maestro-v3.0.0.json").write_text("{}")
    out = tmp_path / "out_maestro"
    assert main([*base, "--dataset", "maestro", "--maestro_dir", str(root.parent),
                 "--output_dir", str(out)]) == 0  # fmt: skip
    by_source = {record["source"]: record for record in manifest(out)}
    assert by_source["2006/c.wav"]["split"] == "val"
    assert by_source["2008/d.wav"]["split"] == "test"
    assert by_source["2004/a.wav"]["tags"]["composer"] == "Composer 0"
    assert len((out / "test_index.txt").read_text().split()) == 3

    out = tmp_path / "combined"
    assert main([*base, "--dataset", "combined", "--maestro_dir", str(root.parent),
                 "--gtzan_dir", str(gtzan.parent), "--output_dir", str(out)]) == 0  # fmt: skip
    train = (out / "train_index.txt").read_text().split()
    assert {line.split("/")[0] for line in train} == {"maestro", "gtzan"}
    assert all((out / line).is_file() for line in train)


@pytest.fixture(scope="module")
def trained(custom, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "gtzan_like"
    args = ["harmonic", "--mode", "train", "--custom_dir", str(custom), "--output_dir", str(out)]
    code = main([*args, *TINY, "--epochs", "21", "--checkpoint_every", "3", "--quiet"])
    assert code == 0
    return out


def test_train_writes_the_manuals_files(trained):
    names = sorted(path.name for path in trained.glob("*.pt"))
    assert names == [
        "harmonic_vae_best.pt",
        "harmonic_vae_epoch_15.pt",
        "harmonic_vae_epoch_18.pt",
        "harmonic_vae_epoch_21.pt",
        "harmonic_vae_last.pt",
    ]
    payload = load_checkpoint(trained / "harmonic_vae_best.pt", kind="mel_vae")
    assert payload["config"]["model"]["hidden_dims"] == [64, 32]
    assert payload["config"]["train"]["tensorboard"] is False
    assert not (trained / "logs").exists()  # --use_tensorboard False
    assert (trained / "data" / "train_index.txt").is_file()


def test_a_flat_json_config_is_read_and_flags_override_it(custom, tmp_path, capsys):
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "dataset": "custom",
                "custom_dir": str(custom),
                "mode": "train",
                "epochs": 1,
                "latent_dim": 6,
                "hidden_dims": [48],
                "beta_end": 0.5,
                "learning_rate": 0.0005,
                "checkpoint_every": 1,
            }
        )
    )
    out = tmp_path / "run"
    flags = [flag for flag in TINY if flag not in ("--hidden_dims", "64,32")]
    args = ["harmonic", "--config", str(config), "--output_dir", str(out), *flags]
    assert main([*args, "--latent_dim", "5"]) == 0
    stored = load_checkpoint(out / "harmonic_vae_last.pt", kind="mel_vae")["config"]
    assert stored["model"]["latent_dim"] == 5  # the flag beats the file
    assert stored["model"]["hidden_dims"] == [48]  # the file beats the default
    assert stored["train"]["learning_rate"] == 0.0005 and stored["train"]["epochs"] == 1
    err = capsys.readouterr().err
    assert "Epoch 1/1, Train Loss:" in err
    assert (
        f"Ctrl-C saves and stops (continue with --resume_from {out / 'harmonic_vae_last.pt'})"
        in err
    )
    config.write_text(json.dumps({"epoch": 3}))
    assert main(["harmonic", "--config", str(config)]) == 1
    assert "unknown key(s) epoch" in capsys.readouterr().err


def test_resume_from_another_run_fine_tunes_and_starts_lower(trained, tmp_path):
    """Transfer learning: the same data set's new run starts from the other run's weights."""
    new = texture_folder(tmp_path / "new", [f"x/clip{i}.wav" for i in range(8)])
    runs = {}
    for name, extra in (("scratch", []), ("tuned", ["--resume_from",
                        str(trained / "harmonic_vae_best.pt")])):  # fmt: skip
        out = tmp_path / name
        args = ["harmonic", "--mode", "train", "--custom_dir", str(new), "--output_dir", str(out)]
        assert main([*args, *TINY, "--epochs", "1", "--quiet", *extra]) == 0
        runs[name] = out
    # The first validation after one epoch: the fine-tuned run is far ahead of scratch.
    scratch = load_checkpoint(runs["scratch"] / "harmonic_vae_last.pt")["metrics"]
    tuned = load_checkpoint(runs["tuned"] / "harmonic_vae_last.pt")["metrics"]
    assert tuned["recon_l1"] < 0.8 * scratch["recon_l1"], (tuned, scratch)
    with pytest.raises(SystemExit):
        main(["harmonic", "--hidden_dims", "a,b"])


def test_a_mismatched_transfer_checkpoint_is_refused_by_name(trained, custom, tmp_path, capsys):
    args = ["harmonic", "--custom_dir", str(custom), "--output_dir", str(tmp_path / "r"), *TINY]
    resume = ["--resume_from", str(trained / "harmonic_vae_best.pt")]
    assert main([*args, "--latent_dim", "3", "--epochs", "1", *resume]) == 1
    error = capsys.readouterr().err
    assert "another shape than this config's" in error and "--latent_dim" in error


def test_validate_data_reports_each_file(custom, tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "bad.wav").write_bytes(b"RIFF0000WAVEjunk")
    assert main(["harmonic", "--mode", "validate_data", "--custom_dir", str(custom)]) == 0
    assert "drone/clip0.wav" in capsys.readouterr().out
    assert main(["harmonic", "--mode", "validate_data", "--dataset_dir", str(broken)]) == 1


def test_python_dash_m_runs_the_same_command(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "helius.harmonic", "--mode", "download", "--dataset", "custom"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "--mode download fetches --dataset maestro or gtzan" in result.stderr
    torch.manual_seed(0)  # (keeps this module's later tests independent of the subprocess)


def test_tune_runs_a_resumable_study_and_writes_a_ready_config(custom, tmp_path, capsys):
    import optuna

    from helius.config import load_config

    out = tmp_path / "tuning"
    args = ["harmonic", "--mode", "tune", "--custom_dir", str(custom), "--output_dir", str(out)]
    assert main([*args, *TINY, "--epochs", "2", "--trials", "3", "--quiet"]) == 0
    assert "ready config:" in capsys.readouterr().out
    study = optuna.load_study(study_name="harmonic_vae", storage=f"sqlite:///{out / 'study.db'}")
    assert len(study.trials) == 3
    # The pruner was fed by the trainer's validation callback: one report per epoch.
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert all(sorted(t.intermediate_values) == [1, 2] for t in complete)
    assert {t.params["latent_dim"] for t in study.trials} <= {64, 128, 256}
    # An interrupted (or finished) study resumes: asking for 4 runs only the missing one.
    assert main([*args, *TINY, "--epochs", "2", "--trials", "4", "--quiet"]) == 0
    study = optuna.load_study(study_name="harmonic_vae", storage=f"sqlite:///{out / 'study.db'}")
    assert len(study.trials) == 4
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert [int(row["number"]) for row in rows] == [0, 1, 2, 3]
    best = load_config(out / "best_config.yaml")
    assert best.model.kind == "mel_vae"
    assert best.model.latent_dim == study.best_trial.params["latent_dim"]
    assert best.train.learning_rate == pytest.approx(study.best_trial.params["learning_rate"])
    assert float(rows[study.best_trial.number]["elbo_loss"]) == pytest.approx(study.best_value)


def test_training_writes_visualizations_every_checkpoint_epoch(trained):
    folder = trained / "visualizations"
    summaries = sorted(path.name for path in folder.glob("summary_*.json"))
    assert summaries == [f"summary_{epoch:06d}.json" for epoch in range(3, 22, 3)]
    summary = json.loads((folder / "summary_000021.json").read_text())
    assert 0.0 <= summary["sparsity"] <= 1.0
    assert set(summary["projections"]["tsne"]["legend"]) <= {"drone", "bells"}


def test_generate_writes_distinct_clips_of_one_patch(trained, capsys):
    args = ["harmonic", "--mode", "generate", "--output_dir", str(trained)]
    assert main([*args, "--num_samples", "3", "--griffin_lim_iterations", "8"]) == 0
    clips = sorted((trained / "generated").glob("sample_*.wav"))
    assert len(clips) == 3
    audio = [sf.read(path)[0] for path in clips]
    assert all(len(clip) == pytest.approx(0.5 * RATE, abs=64) for clip in audio)
    assert all(np.abs(clip).max() > 1e-4 for clip in audio)  # not silence
    assert not np.allclose(audio[0], audio[1])  # different latents, different sounds


def test_interpolate_walks_from_one_input_to_the_other(trained, custom):
    a, b = custom / "drone" / "clip0.wav", custom / "drone" / "clip2.wav"  # pluck, pad
    args = ["harmonic", "--mode", "interpolate", "--output_dir", str(trained), "--steps", "5"]
    assert main([*args, "--inputs", str(a), str(b), "--griffin_lim_iterations", "8"]) == 0
    clips = sorted((trained / "interpolated").glob("slerp_*.wav"))
    assert len(clips) == 5
    from helius.harmonic.inverters import load_mel_vae

    model = load_mel_vae(trained / "harmonic_vae_best.pt")

    def mel(path):
        audio = torch.as_tensor(sf.read(path, dtype="float32")[0])[None, None, : int(0.5 * RATE)]
        return model.features(
            torch.nn.functional.pad(audio, (0, int(0.5 * RATE) - audio.shape[-1]))
        )

    # The walk leaves the first input and nears the second (a tiny model reconstructs neither
    # well, so the test asks for the direction, not for the ends to be the inputs).
    to_a = [float((mel(clip) - mel(a)).abs().mean()) for clip in clips]
    to_b = [float((mel(clip) - mel(b)).abs().mean()) for clip in clips]
    assert to_a[-1] > to_a[0] + 0.1 and to_b[-1] < to_b[0] - 0.1


def test_visualize_mode_writes_maps_and_audio_for_the_checkpoint(trained, tmp_path):
    out = tmp_path / "vis"
    args = [
        "harmonic",
        "--mode",
        "visualize",
        "--checkpoint",
        str(trained / "harmonic_vae_best.pt"),
    ]
    assert main([*args, "--output_dir", str(out), "--griffin_lim_iterations", "8"]) == 0
    summary = json.loads(next((out / "visualizations").glob("summary_*.json")).read_text())
    assert summary["count"] >= 3 and summary["reconstructions"]
    assert Path(summary["projections"]["tsne"]["path"]).is_file()
    assert Path(summary["reconstructions"][0]["reconstruction"]).is_file()


def test_generate_without_a_checkpoint_says_what_to_do(tmp_path, capsys):
    assert main(["harmonic", "--mode", "generate", "--output_dir", str(tmp_path)]) != 0
    assert "train one (--mode train)" in capsys.readouterr().err


def test_hidden_dims_ask_for_the_manuals_dense_model_else_conv(tmp_path):
    """conv is the default (it measured better); the manual's --hidden_dims (flag or flat
    config) means its dense model, and --architecture says it outright."""
    from helius.cli import build_parser
    from helius.cli.harmonic import apply_flat_config
    from helius.harmonic.datasets import Prepared
    from helius.harmonic.manual import training_config

    parser = build_parser()

    def model(*flags):
        args = parser.parse_args(["harmonic", "--output_dir", str(tmp_path), *flags])
        if args.config is not None:
            apply_flat_config(args.parser, args)
        return training_config(args, Prepared(tmp_path)).model

    assert model().architecture == "conv"
    dense = model("--hidden_dims", "512,256")
    assert (dense.architecture, dense.hidden_dims) == ("mlp", [512, 256])
    assert model("--hidden_dims", "64", "--architecture", "conv").architecture == "conv"
    flat = tmp_path / "manual.json"
    flat.write_text(json.dumps({"hidden_dims": [256, 128]}))
    assert model("--config", str(flat)).architecture == "mlp"
