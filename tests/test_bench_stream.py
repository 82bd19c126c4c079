"""bench/stream.py runs (tiny sizes) and writes its JSON; its numbers are read, never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_stream_benchmark_runs_and_writes_json(tmp_path):
    completed = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "stream.py"),
            "--blocks",
            "512",
            "--stream-seconds",
            "0.5",
            "--dream-seconds",
            "0.5",
            "--short-seconds",
            "0.2",
            "--long-seconds",
            "0.4",
            "--set",
            "model.wave.capacity=4",
            "--set",
            "prior.hidden_size=16",
            "--results-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "| stream lowlatency.yaml, block 512 |" in completed.stdout
    assert "| stream config.yaml, block 512, int8 |" in completed.stdout
    [result] = tmp_path.glob("stream-*.json")
    rows = json.loads(result.read_text())["rows"]
    assert len(rows) == 2 + 1 + 2 + 2  # per config, int8, dream, memory
    assert all(row["x_realtime"] > 0 and row["peak_rss_mb"] > 0 for row in rows)
    assert all(row["latency_ms"] > 0 for row in rows if row["what"] == "stream")
