"""The benchmark scripts run (tiny sizes); their numbers are read by people, never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_prep_benchmark_runs_and_writes_json(tmp_path):
    completed = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "prep.py"),
            "--minutes",
            "0.3",
            "--rss-minutes",
            "0.3",
            "--song-seconds",
            "10",
            "--corpus-dir",
            str(tmp_path / "corpus"),
            "--results-dir",
            str(tmp_path / "results"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "| helius prep, 1 worker(s)" in completed.stdout
    [result] = (tmp_path / "results").glob("prep-*.json")
    rows = json.loads(result.read_text())["rows"]
    assert all(row["seconds"] > 0 and row["x_realtime"] > 0 for row in rows)
    assert sum(1 for row in rows if "memory" in row["what"]) == 1
