"""bench/explore.py runs (tiny model, few requests) and writes its JSON; numbers are read, never
asserted against the target."""

from __future__ import annotations

import json
import subprocess
import sys

from helpers import REPO, TINY_CLIP_OVERRIDES


def test_explore_benchmark_runs_and_writes_json(tmp_path):
    command = [sys.executable, str(REPO / "bench" / "explore.py"), "--requests", "5"]
    for override in TINY_CLIP_OVERRIDES:
        command += ["--set", override]
    completed = subprocess.run(
        [*command, "--results-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "| decode over HTTP (POST /api/decode, WAV back) | 5 |" in completed.stdout
    assert "median < 50 ms" in completed.stdout
    [result] = tmp_path.glob("explore-*.json")
    data = json.loads(result.read_text())
    assert data["kind"] == "clip_vae" and data["audio_seconds"] == 0.25
    assert data["target_median_ms"] == 50.0 and isinstance(data["meets_target"], bool)
    assert [row["requests"] for row in data["rows"]] == [5, 5, 5]
    assert all(row["median_ms"] <= row["p95_ms"] for row in data["rows"])
    assert all(row["min_ms"] > 0 for row in data["rows"][:2])  # HTTP, model
