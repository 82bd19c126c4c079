"""bench/run_all.py collects every script's JSON into one table (a tiny stream run here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import run_all  # noqa: E402


def test_runs_a_script_and_tabulates_its_figures_against_targets(tmp_path):
    tiny = (
        "--blocks 512 --stream-seconds 0.3 --dream-seconds 0.3 --short-seconds 0.2 "
        "--long-seconds 0.4 --set model.wave.capacity=4 --set prior.hidden_size=16"
    )
    completed = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "run_all.py"),
            "--only",
            "stream",
            "--pass",
            f"stream={tiny}",
            "--results-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "| stream | stream lowlatency.yaml block 512 (1 thread) |" in completed.stdout
    [result] = tmp_path.glob("*.json")
    figures = json.loads(result.read_text())["figures"]
    assert {f["figure"] for f in figures} >= {"dream, gru prior", "dream, transformer prior"}
    assert all(f["value"] > 0 for f in figures)


def test_adapters_read_each_scripts_json():
    prep = {
        "summary": {"per_worker_1": 678.0, "speed_vs_ffmpeg_1_process": 1.19},
        "rows": [{"what": "helius prep, 1 worker (memory)", "peak_rss_mb": 59.6}],
    }
    assert [row[4] for row in run_all._prep(prep)] == [True, True, True]
    train = {
        "summary": {
            "default_wave_2_threads_audio_s_per_s": 13.0,
            "default_wave_2_threads_peak_rss_mb": 900.0,
        }
    }
    assert [row[4] for row in run_all._train_speed(train)] == [False, True]
    quality = {
        "summary": {"config.yaml_vs_silence": {"mrstft_ratio": 0.4, "beaten_on_all_three": True}}
    }
    assert run_all._quality(quality)[0][4] is True
    explore = {"rows": [{"median_ms": 84.0}]}
    assert run_all._explore(explore)[0][4] is False
    assert "**no**" in run_all.table([("explore", run_all._explore(explore)[0])])
