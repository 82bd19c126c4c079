"""Run every benchmark and print one table of headline figures next to their targets.

Runs bench/prep.py, train_speed.py, quality.py, stream.py and explore.py one after another
(each in its own process, each writing its own JSON), then writes the combined figures to
bench/results/<date>-<host>.json and prints one markdown table. `--quick` shrinks the long
runs (smaller corpus, shorter training budgets) for a first look; the README quotes full runs.

    python bench/run_all.py [--quick] [--only prep stream ...]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent

QUICK_ARGS = {
    "prep": ["--minutes", "5", "--rss-minutes", "2", "10"],
    "train_speed": [],
    "quality": ["--minutes", "2", "--data", "builtin"],
    "stream": ["--dream-seconds", "20", "--long-seconds", "120"],
    "explore": [],
}

Row = tuple[str, float, str, str, bool | None]  # figure, value, unit, target text, met


def _prep(data: dict) -> list[Row]:
    summary = data["summary"]
    rss = [row["peak_rss_mb"] for row in data["rows"] if "memory" in row["what"]]
    rows: list[Row] = [
        (
            "prep, 1 worker (x real time)",
            summary["per_worker_1"],
            "x",
            ">= 300",
            summary["per_worker_1"] >= 300,
        )
    ]
    if "speed_vs_ffmpeg_1_process" in summary:
        ratio = summary["speed_vs_ffmpeg_1_process"]
        rows.append(("prep vs ffmpeg CLI (speed ratio)", ratio, "x", ">= 1", ratio >= 1))
    if rss:
        rows.append(("prep peak RSS, largest corpus", max(rss), "MB", "< 1024", max(rss) < 1024))
    return rows


def _train_speed(data: dict) -> list[Row]:
    summary = data["summary"]
    if "default_wave_2_threads_audio_s_per_s" not in summary:
        return []
    speed = summary["default_wave_2_threads_audio_s_per_s"]
    rss = summary["default_wave_2_threads_peak_rss_mb"]
    return [
        ("train default wave VAE, 2 threads", speed, "audio-s/s", ">= 20", speed >= 20),
        ("train default wave VAE, peak RSS", rss, "MB", "< 2048", rss < 2048),
    ]


REAL_MUSIC_TARGETS = (  # issue #12: the default config, 30 CPU minutes, unseen pieces
    ("loudness_corr", "loudness envelope corr.", ">= 0.95", lambda x: x >= 0.95),
    ("spectral_change_corr", "spectral-change corr.", ">= 0.6", lambda x: x >= 0.6),
    ("loudness_diff_db", "loudness difference (dB)", "within ±1", lambda x: abs(x) <= 1.0),
    ("mrstft", "MR-STFT (auraloss)", "<= 1.10", lambda x: x <= 1.10),
    ("mel", "mel distance (DAC)", "<= 0.75", lambda x: x <= 0.75),
)


def _quality(data: dict) -> list[Row]:
    rows: list[Row] = []
    for record in data.get("real_music", []):
        trained = record["rows"]["trained"]
        minutes = data["settings"]["minutes"]
        for key, label, target, met in REAL_MUSIC_TARGETS:
            figure = f"real music {record['config']} {minutes:g} min, unseen: {label}"
            rows.append((figure, trained[key], "", target, met(trained[key])))
    for key, verdict in data["summary"].items():
        rows.append(
            (
                f"quality {key}: MR-STFT trained/baseline",
                verdict["mrstft_ratio"],
                "ratio",
                "< 1 (all three metrics)",
                verdict["beaten_on_all_three"],
            )
        )
    return rows


def _stream(data: dict) -> list[Row]:
    rows: list[Row] = []
    targets = {("config.yaml", 2048): 20.0, ("lowlatency.yaml", 512): 8.0}
    memory = []
    for row in data["rows"]:
        if row["what"] == "stream" and (row["config"], row["block"]) in targets:
            target = targets[(row["config"], row["block"])]
            label = f"stream {row['config']} block {row['block']} (1 thread)"
            met = row["x_realtime"] >= target
            rows.append((label, row["x_realtime"], "x real time", f">= {target:g}", met))
        elif row["what"] == "dream" and row.get("memory"):
            memory.append(row)
        elif row["what"] == "dream":
            target = 10.0 if row["prior"] == "gru" else None
            met = None if target is None else row["x_realtime"] >= target
            text = "" if target is None else f">= {target:g}"
            label = f"dream, {row['prior']} prior"
            rows.append((label, row["x_realtime"], "x real time", text, met))
    if len(memory) == 2:
        short, long = sorted(memory, key=lambda row: row["seconds"])
        growth = long["peak_rss_mb"] / short["peak_rss_mb"]
        label = f"dream RSS {long['seconds']:g} s / {short['seconds']:g} s"
        rows.append((label, growth, "ratio", "~1 (flat)", growth < 1.1))
    return rows


def _explore(data: dict) -> list[Row]:
    median = data["rows"][0]["median_ms"] if "rows" in data else data["median_ms"]
    return [("explorer decode over HTTP, median", median, "ms", "< 50", median < 50)]


ADAPTERS: dict[str, Callable[[dict], list[Row]]] = {
    "prep": _prep,
    "train_speed": _train_speed,
    "quality": _quality,
    "stream": _stream,
    "explore": _explore,
}


def run(name: str, quick: bool, results: Path, extra: list[str]) -> dict:
    script = BENCH_DIR / f"{name}.py"
    argv = [sys.executable, str(script), "--results-dir", str(results)]
    argv += (QUICK_ARGS[name] if quick else []) + extra
    subprocess.run(argv, check=True, env={**os.environ})
    [path] = sorted(results.glob(f"{name}-*.json"))[-1:]
    return json.loads(path.read_text())


def table(rows: list[tuple[str, Row]]) -> str:
    lines = ["| benchmark | figure | measured | target | met |", "| --- | --- | ---: | --- | --- |"]
    for name, (figure, value, unit, target, met) in rows:
        verdict = "" if met is None else ("yes" if met else "**no**")
        lines.append(f"| {name} | {figure} | {value:.3g} {unit} | {target} | {verdict} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs for a first look")
    parser.add_argument("--only", nargs="+", choices=list(ADAPTERS), default=list(ADAPTERS))
    parser.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")
    parser.add_argument(
        "--tabulate",
        action="store_true",
        help="run nothing: tabulate the newest JSON of each script in --results-dir",
    )
    parser.add_argument(
        "--pass",
        dest="passed",
        action="append",
        default=[],
        metavar="NAME=ARGS",
        help='extra arguments for one script, e.g. stream="--blocks 512"',
    )
    args = parser.parse_args(argv)
    extra = {name: [] for name in ADAPTERS}
    for item in args.passed:
        name, _, text = item.partition("=")
        extra[name] += shlex.split(text)
    collected: list[tuple[str, Row]] = []
    details = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.only:
            if args.tabulate:
                newest = sorted(args.results_dir.glob(f"{name}-*.json"))[-1:]
                if not newest:
                    continue
                data = json.loads(newest[0].read_text())
            else:
                data = run(name, args.quick, Path(scratch), extra[name])
            details[name] = data
            collected += [(name, row) for row in ADAPTERS[name](data)]
    print("\n" + table(collected))
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.date.today().isoformat()
    path = args.results_dir / f"{stamp}-{platform.node()}.json"
    machine = {
        "host": platform.node(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
    }
    figures = [
        {"benchmark": name, "figure": f, "value": v, "unit": u, "target": t, "met": m}
        for name, (f, v, u, t, m) in collected
    ]
    path.write_text(json.dumps({"machine": machine, "figures": figures, "runs": details}, indent=2))
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
