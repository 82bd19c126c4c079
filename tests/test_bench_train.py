"""The training benchmarks run (tiny models, seconds); their numbers are read, never asserted."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def run_bench(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "bench" / script), *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )


def quality_scratch(tmp_path: Path) -> list[str]:
    """bench/quality.py arguments for a test: no waiting, everything under tmp_path."""
    work, results = str(tmp_path / "work"), str(tmp_path / "results")
    return ["--wait-quiet", "0", "--work-dir", work, "--results-dir", results]


def real_folder(root: Path, train: tuple[str, ...], unseen: tuple[str, ...]) -> None:
    """root/train and root/unseen of 3-second built-in textures: stand-ins for real music."""
    from helpers import write

    from helius.audio.synth import make_texture

    for split, kinds in (("train", train), ("unseen", unseen)):
        for index, kind in enumerate(kinds):
            audio, _ = make_texture(kind, index + 10 * (split == "unseen"), 16000, 3.0)
            write(root / split / f"{kind}_{index}.wav", audio[None], 16000)


def read_rows(results: Path, prefix: str) -> list[dict]:
    [result] = results.glob(f"{prefix}-*.json")
    return json.loads(result.read_text())["rows"]


def test_train_speed_benchmark_runs_and_writes_json(tmp_path):
    completed = run_bench(
        "train_speed.py",
        "--tiny",
        "--steps",
        "2",
        "--warmup",
        "1",
        "--threads",
        "1",
        "--wait-quiet",
        "0",
        "--results-dir",
        str(tmp_path / "results"),
    )
    assert completed.returncode == 0, completed.stderr
    assert "| config " in completed.stdout and "| audio-s/s |" in completed.stdout
    rows = read_rows(tmp_path / "results", "train_speed")
    assert {row["kind"] for row in rows} == {"wave_vae", "clip_vae"}
    for row in rows:
        assert row["threads"] == 1 and len(row["step_seconds"]) == 2
        for key in ("params", "audio_seconds_per_step", "median_step_seconds", "audio_s_per_s"):
            assert row[key] > 0, key
        assert row["peak_rss_mb"] > 0


def test_quality_benchmark_runs_and_writes_json(tmp_path):
    completed = run_bench(
        "quality.py",
        "--tiny",
        "--data",
        "builtin",
        "--minutes",
        "0.02",
        *quality_scratch(tmp_path),
    )
    assert completed.returncode == 0, completed.stderr
    assert "| config " in completed.stdout and "| MR-STFT |" in completed.stdout
    rows = read_rows(tmp_path / "results", "quality")
    assert [row["output"] for row in rows] == ["silence", "untrained", "trained"] * 2
    for row in rows:
        assert row["mrstft"] > 0 and row["mel"] > 0
        assert math.isfinite(row["si_sdr"])
        if row["output"] == "silence":
            assert row["si_sdr"] == -100.0  # the floor: silence holds none of the target
        assert row["val_segments"] > 0 and row["train_segments"] > 0
        if row["output"] == "trained":
            assert row["steps"] > 0 and row["audio_s_per_s"] > 0
        else:
            assert row["mrstft_ratio"] > 0 and row["mel_ratio"] > 0
    assert (tmp_path / "work" / "config" / "checkpoints" / "last.pt").is_file()


def test_quality_benchmark_scores_real_music_against_static_baselines(tmp_path):
    """--data real with a folder of train/ and unseen/ pieces (generated here: the packaged
    real-music set needs music21 and FluidSynth): every row and metric is reported."""
    real_folder(tmp_path / "real", ("pluck", "fm", "pad", "pluck"), ("fm", "pad"))
    completed = run_bench(
        "quality.py",
        "--tiny",
        "--data",
        "real",
        "--configs",
        str(REPO / "configs" / "config.yaml"),
        "--real-dir",
        str(tmp_path / "real"),
        "--real-seconds",
        "2",
        "--minutes",
        "0.02",
        *quality_scratch(tmp_path),
    )
    assert completed.returncode == 0, completed.stderr
    assert "real music: config.yaml" in completed.stdout
    [path] = (tmp_path / "results").glob("quality-*.json")
    [record] = json.loads(path.read_text())["real_music"]
    rows = record["rows"]
    assert set(rows) == {"silence", "static_noise", "lowpass_4k", "untrained", "trained"}
    assert record["steps"] > 0 and record["data"]["unseen_files"] == ["fm_0.wav", "pad_1.wav"]
    # The static baseline has the input's level and follows nothing; the low-pass follows.
    assert abs(rows["static_noise"]["loudness_diff_db"]) < 0.5
    assert rows["lowpass_4k"]["loudness_corr"] > 0.9 > abs(rows["static_noise"]["loudness_corr"])
    assert rows["silence"]["si_sdr"] == -100.0
    for key in ("sensitivity_zero_db", "sensitivity_shuffle_db"):
        assert math.isfinite(rows["trained"][key])


def test_adversarial_benchmark_continues_one_checkpoint_both_ways(tmp_path):
    real_folder(tmp_path / "real", ("pluck", "fm", "pad"), ("fm",))
    completed = run_bench(
        "adversarial.py",
        "--tiny",
        "--real-dir",
        str(tmp_path / "real"),
        "--phase1-minutes",
        "0.02",
        "--phase2-minutes",
        "0.02",
        "--real-seconds",
        "2",
        "--set",
        "train.adversarial.fft_sizes=[256,128]",
        "--set",
        "train.adversarial.periods=[2,3]",
        "--work-dir",
        str(tmp_path / "work"),
        "--results-dir",
        str(tmp_path / "results"),
    )
    assert completed.returncode == 0, completed.stderr
    [path] = (tmp_path / "results").glob("adversarial-*.json")
    result = json.loads(path.read_text())
    assert {"phase 1", "phase 1 + 2", "static_noise"} <= set(result["rows"])
    assert all(steps > result["switch_step"] for steps in result["steps"].values())
    state = torch.load(
        tmp_path / "work" / "phase1_2" / "checkpoints" / "last.pt", weights_only=True
    )["task_state"]
    assert "discriminator" in state


def test_ablation_benchmark_trains_each_variant_for_the_same_steps(tmp_path):
    real_folder(tmp_path / "real", ("pluck", "fm", "pad"), ("fm",))
    results = tmp_path / "results"
    completed = run_bench(
        "ablation.py",
        "--tiny",
        "--real-dir",
        str(tmp_path / "real"),
        "--steps",
        "3",
        "--real-seconds",
        "2",
        "--variants",
        "default",
        "noise_off",
        "--work-dir",
        str(tmp_path / "work"),
        "--results-dir",
        str(results),
    )
    assert completed.returncode == 0, completed.stderr
    [path] = results.glob("ablation-*.json")
    result = json.loads(path.read_text())
    records = result["records"]
    assert result["data"]["unseen_files"] == ["fm_0.wav"] and result["data"]["train_files"] == 3
    assert [r["variant"] for r in records] == ["default", "noise_off"]
    assert [r["steps"] for r in records] == [3, 3]
    assert records[0]["scores"] != records[1]["scores"]
    assert abs(records[0]["baselines"]["static_noise"]["loudness_corr"]) < 0.5
    summary = run_bench("ablation.py", "--summarise", str(path))
    assert summary.returncode == 0, summary.stderr
    assert "| noise_off | 3 |" in summary.stdout and "| (lowpass_4k) |" in summary.stdout


def test_ablation_pytorch_init_variant_really_skips_the_initialisation(monkeypatch):
    """The "pytorch_init" variant builds models with PyTorch's random conv biases; every
    other variant gets helius's zero biases."""
    monkeypatch.syspath_prepend(str(REPO / "bench"))
    import ablation

    from helius.config import load_config
    from helius.models.wave_vae import WaveVAE

    config = load_config(REPO / "configs" / "tiny.yaml")
    for name, zero_bias in (("default", True), ("pytorch_init", False)):
        with ablation._variant_patch(name):
            model = WaveVAE(config.model, 16000)
        bias = model.decoder.input.bias
        assert bool((bias == 0).all()) is zero_bias, name
