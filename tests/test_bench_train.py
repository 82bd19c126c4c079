"""The training benchmarks run (tiny models, seconds); their numbers are read, never asserted."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_bench(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "bench" / script), *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )


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
        "--minutes",
        "0.02",
        "--wait-quiet",
        "0",
        "--work-dir",
        str(tmp_path / "work"),
        "--results-dir",
        str(tmp_path / "results"),
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
