"""CLI for first runs: demo (the whole pipeline on built-in sounds) and report."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from helius import progress
from helius.cli.common import command

SYSTEM = "every system"


def add_commands(commands) -> None:
    demo = command(
        commands,
        "demo",
        _run_demo,
        "run the whole pipeline on built-in sounds on the CPU: data, wave VAE, clip VAE, prior, "
        "dream, stream, export, report",
    )
    demo.add_argument("--out", type=Path, default=Path("demo_run"), help="output folder")
    demo.add_argument(
        "--minutes", type=float, default=5.0, help="time budget, shared among the training stages"
    )
    demo.add_argument("--seed", type=int, default=0, help="random seed")
    demo.add_argument("--tiny", action="store_true", help="tiny models, a few steps (seconds)")
    demo.add_argument("--quiet", action="store_true", help="no progress display")

    report = command(
        commands, "report", _run_report, "write report.html for a run made by helius demo"
    )
    report.add_argument(
        "--run", dest="run_dir", type=Path, required=True, help="run folder (with run.json)"
    )


def _run_demo(args: argparse.Namespace) -> int:
    from helius.demo import run_demo

    started = time.perf_counter()

    def on_stage(name: str, index: int, count: int, left: float) -> None:
        eta = "" if args.tiny else f", about {left:.1f} min left"
        progress.note(f"[{index + 1}/{count}] {name}{eta}")

    result = run_demo(args.out, args.minutes, tiny=args.tiny, seed=args.seed, on_stage=on_stage)
    speed = result.run["speed"]
    print(f"demo finished in {(time.perf_counter() - started) / 60:.1f} min: {result.out}")
    threads = speed["threads"]
    print(
        f"  wave VAE trained at {speed['wave_train_audio_s_per_s']:.1f} audio-s/s "
        f"({threads['wave VAE']} threads); streaming {speed['stream_realtime_factor']:.1f}x "
        f"real time ({threads['stream']} thread), latency {speed['stream_latency_ms']:.0f} ms; "
        f"dreaming {speed['dream_realtime_factor']:.1f}x ({threads['dream']} thread)"
    )
    print(f"  listen and look: {result.report}")
    print(f"  explore the one-shots' latent space: {result.explore_command}")
    return 0


def _run_report(args: argparse.Namespace) -> int:
    from helius.report.page import write_report

    print(f"wrote {write_report(args.run_dir)}")
    return 0
