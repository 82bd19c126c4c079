"""bench/live.py runs (tiny sizes, half a second) and writes its JSON; its timings are read,
never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_live_benchmark_runs_and_writes_json(tmp_path):
    completed = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "live.py"),
            "--seconds",
            "0.5",
            "--blocks",
            "2048",
            "--configs",
            "tiny.yaml",
            "--results-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "| tiny.yaml | 2048 | 11 |" in completed.stdout  # round(0.5 s * 44100 / 2048)
    [result] = tmp_path.glob("live-*.json")
    [row] = json.loads(result.read_text())["rows"]
    assert row["callbacks"] == 11 and 0 <= row["model_blocks"] <= 11
    assert row["worst_callback_ms"] >= 0 and row["mean_load"] >= 0 and row["latency_ms"] > 0
