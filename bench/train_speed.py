"""Benchmark training speed: audio-seconds trained per wall-second and peak memory, on CPU.

For each config (default: the streaming wave VAE of configs/config.yaml and the clip VAE of
configs/clip.yaml) and each thread count (default 1 and 2), a fresh process builds the model,
sets torch.set_num_threads, and times full optimiser steps exactly as the trainer takes them:
forward, VAETask.loss, backward, gradient clipping and an AdamW step, on random batches of
the config's batch size and segment (wave) or clip length. Warm-up steps are dropped and the
median step is reported with the process's peak RSS (resource.getrusage) and the parameter
count. Other work on the machine wrecks these figures (2 threads on 2 busy cores can be 10x
slower), so each run first waits for the machine to go quiet (--wait-quiet), the table shows
how many cores other processes used meanwhile ("busy", from /proc/stat), and "quiet audio-s/s"
is the median over the steps during which they left this run's cores free.
Prints a table and writes bench/results/train_speed-<date>-<host>.json.

    python bench/train_speed.py [--steps 20] [--warmup 5] [--threads 1 2]
                                [--configs configs/config.yaml configs/clip.yaml]
                                [--set section.key=value ...] [--tiny] [--wait-quiet 600]
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
DEFAULT_CONFIGS = (REPO / "configs" / "config.yaml", REPO / "configs" / "clip.yaml")
TARGET_AUDIO_S_PER_S = 20.0  # default wave VAE, 2 threads
TARGET_PEAK_RSS_MB = 2048.0
TARGET_THREADS = 2
RAVE_V2_SMALL_AUDIO_S_PER_S = 8.6  # anchor measured on this machine class, 2 threads
QUIET_CORES = 0.25  # before each run, wait for other processes to use less CPU than this

# --tiny: model and batch sizes that take well under a second per step (for the tests).
TINY_OVERRIDES = {
    "wave_vae": [
        "data.sample_rate=16000",
        "data.segment_seconds=0.5",
        "model.latent_dim=4",
        # tiny sizes for both designs (ablation variants switch to the pqmf one)
        "model.wave.bands=4",
        "model.wave.ratios=[4, 4, 2]",
        "model.wave.capacity=8",
        "model.wave.dilations=[1, 3]",
        "model.wave.stft.n_fft=256",
        "model.wave.stft.hop=64",
        "model.wave.stft.frames_per_latent=2",
        "model.wave.stft.width=16",
        "model.wave.stft.encoder_blocks=1",
        "model.wave.stft.decoder_blocks=1",
        "train.batch_size=2",
    ],
    "clip_vae": [
        "data.sample_rate=8000",
        "data.segment_seconds=0.5",
        "model.latent_dim=4",
        "model.clip.clip_seconds=0.5",
        "model.clip.channels=[8, 16]",
        "model.clip.strides=[4, 4]",
        "model.clip.hidden=32",
        "train.batch_size=2",
    ],
}


def config_overrides(path: Path, tiny: bool, extra: list[str]) -> list[str]:
    """The --set overrides for one config: the tiny sizes for its model kind, then `extra`."""
    from helius.config import load_config

    kind = load_config(path).model.kind
    return [*(TINY_OVERRIDES[kind] if tiny else []), *extra]


# --- the measurement, in a fresh process ---------------------------------------------------


def busy_cpu_seconds() -> float | None:
    """CPU seconds every process on the machine has used since boot (Linux), else None."""
    try:
        ticks = [int(value) for value in Path("/proc/stat").read_text().split()[1:9]]
    except (OSError, ValueError):
        return None
    idle = ticks[3] + ticks[4]  # idle and iowait; steal counts as used: not ours to use
    return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def other_cpu_cores(busy: float | None, own: float, wall: float) -> float | None:
    """Mean cores used by everything but this process since (busy, own, wall) were read."""
    now = busy_cpu_seconds()
    if busy is None or now is None:
        return None
    return max(0.0, (now - busy) - (own_cpu_seconds() - own)) / (time.perf_counter() - wall)


def time_steps(spec: dict) -> dict:
    """Build the model of `spec` and time its optimiser steps; runs in the child process."""
    import torch

    from helius.config import load_config
    from helius.train.optim import build_optimizer
    from helius.train.runtime import keep_freed_memory, seed_everything
    from helius.train.vae_task import VAETask

    keep_freed_memory()  # as the trainer does on the CPU
    torch.set_num_threads(spec["threads"])
    config = load_config(spec["config"], spec["overrides"])
    seed_everything(config.train.seed)
    task = VAETask(config)
    model = task.build_model().train()
    optimizer = build_optimizer(
        task.parameter_groups(model, config.train.weight_decay), config.train
    )
    length = task.item_samples(config.train.crop_seconds or config.data.segment_seconds)
    shape = (config.train.batch_size, task.channels, length)
    batches = [0.3 * torch.randn(shape).clamp(-3, 3) for _ in range(2)]
    grad_clip = config.train.grad_clip or math.inf
    seconds, others = [], []
    for step in range(spec["warmup"] + spec["steps"]):
        if step == spec["warmup"]:
            before = busy_cpu_seconds(), own_cpu_seconds(), time.perf_counter()
        started = busy_cpu_seconds(), own_cpu_seconds(), time.perf_counter()
        loss, _ = task.loss(model, batches[step % len(batches)], step)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        seconds.append(time.perf_counter() - started[2])
        others.append(other_cpu_cores(*started))
    return {
        "kind": config.model.kind,
        "sample_rate": config.data.sample_rate,
        "params": sum(p.numel() for p in model.parameters()),
        "batch_size": shape[0],
        "item_samples": length,
        "audio_seconds_per_step": shape[0] * length / config.data.sample_rate,
        "step_seconds": seconds[spec["warmup"] :],
        "other_cpu_cores": other_cpu_cores(*before),
        "step_other_cpu_cores": others[spec["warmup"] :],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def wait_for_quiet(timeout: float, threshold: float = QUIET_CORES, window: float = 15.0):
    """Wait up to `timeout` s for other processes to use < `threshold` cores over `window` s.

    Returns the last reading (None: no reading, e.g. not Linux, or `timeout` <= 0).
    """
    deadline = time.monotonic() + timeout
    load = None
    while time.monotonic() < deadline:
        before = busy_cpu_seconds(), own_cpu_seconds(), time.perf_counter()
        time.sleep(window)
        load = other_cpu_cores(*before)
        if load is None or load < threshold:
            break
    return load


def measure(spec: dict) -> dict:
    """Run `time_steps(spec)` in a fresh Python process and summarise its steps."""
    completed = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        check=True,
        capture_output=True,
        text=True,
    )
    child = json.loads(completed.stdout.strip().splitlines()[-1])
    median = statistics.median(child["step_seconds"])
    quiet = quiet_steps(child, spec["threads"])
    quiet_median = statistics.median(quiet) if quiet else None
    return {
        **child,
        "median_step_seconds": median,
        "audio_s_per_s": child["audio_seconds_per_step"] / median,
        "quiet_steps": len(quiet),
        "quiet_median_step_seconds": quiet_median,
        "quiet_audio_s_per_s": child["audio_seconds_per_step"] / quiet_median if quiet else None,
    }


def quiet_steps(child: dict, threads: int) -> list[float]:
    """Step times during which other processes left this run's `threads` cores free."""
    spare = max(0, (os.cpu_count() or 1) - threads) + QUIET_CORES
    steps = zip(child["step_seconds"], child["step_other_cpu_cores"], strict=True)
    return [seconds for seconds, others in steps if others is not None and others <= spare]


# --- the report ----------------------------------------------------------------------------


def is_target_row(row: dict) -> bool:
    return row["config"] == "config.yaml" and row["threads"] == TARGET_THREADS


def target_text(row: dict) -> str:
    if is_target_row(row):
        return f">= {TARGET_AUDIO_S_PER_S:g} audio-s/s, < {TARGET_PEAK_RSS_MB / 1024:g} GB"
    if row["kind"] == "wave_vae" and row["threads"] == TARGET_THREADS:
        return f"RAVE v2_small ~{RAVE_V2_SMALL_AUDIO_S_PER_S:g}"
    return "-"


def print_table(rows: list[dict]) -> None:
    print(
        f"\ntraining speed on {platform.node()} ({os.cpu_count()} cores, "
        f"{platform.processor() or '?'}): median step over all timed steps, and over the "
        "'quiet' steps\nduring which other processes left our cores free; 'busy' is the mean "
        "number of cores other processes used"
    )
    print(
        f"| {'config':<24} | {'threads':>7} | {'params M':>8} | {'batch':>5} | "
        f"{'audio s/step':>12} | {'step s':>7} | {'audio-s/s':>9} | {'quiet audio-s/s':>19} | "
        f"{'peak RSS MB':>11} | {'busy':>4} | {'target':<32} |"
    )
    widths = (24, 7, 8, 5, 12, 7, 9, 19, 11, 4, 32)
    print("|" + "|".join("-" * (width + 2) for width in widths) + "|")
    for row in rows:
        name = f"{row['config']} ({row['kind']})"
        busy = "?" if row["other_cpu_cores"] is None else f"{row['other_cpu_cores']:.1f}"
        quiet = f"{row['quiet_steps']}/{len(row['step_seconds'])} steps"
        if row["quiet_audio_s_per_s"] is not None:
            quiet = f"{row['quiet_audio_s_per_s']:.2f} ({quiet})"
        print(
            f"| {name:<24} | {row['threads']:>7} | {row['params'] / 1e6:>8.2f} | "
            f"{row['batch_size']:>5} | {row['audio_seconds_per_step']:>12.2f} | "
            f"{row['median_step_seconds']:>7.3f} | {row['audio_s_per_s']:>9.2f} | "
            f"{quiet:>19} | {row['peak_rss_mb']:>11.0f} | {busy:>4} | {target_text(row):<32} |"
        )


def summarise(rows: list[dict]) -> dict:
    """Target verdict for the default wave VAE on 2 threads, when it was measured.

    Judged on the quiet steps when there are any (other work says nothing about Helius),
    else on all steps.
    """
    summary: dict = {
        "target_audio_s_per_s": TARGET_AUDIO_S_PER_S,
        "target_peak_rss_mb": TARGET_PEAK_RSS_MB,
        "rave_v2_small_audio_s_per_s": RAVE_V2_SMALL_AUDIO_S_PER_S,
    }
    target = next((row for row in rows if is_target_row(row)), None)
    if target is None:
        return summary
    judged_on = "quiet steps" if target["quiet_audio_s_per_s"] is not None else "all steps"
    speed = target["quiet_audio_s_per_s"] or target["audio_s_per_s"]
    rss = target["peak_rss_mb"]
    met = speed >= TARGET_AUDIO_S_PER_S and rss < TARGET_PEAK_RSS_MB
    summary.update(
        default_wave_2_threads_audio_s_per_s=target["audio_s_per_s"],
        default_wave_2_threads_quiet_audio_s_per_s=target["quiet_audio_s_per_s"],
        default_wave_2_threads_peak_rss_mb=rss,
        judged_on=judged_on,
        target_met=met,
        vs_rave_v2_small=speed / RAVE_V2_SMALL_AUDIO_S_PER_S,
    )
    print(
        f"target: default wave VAE >= {TARGET_AUDIO_S_PER_S:g} audio-s/s on {TARGET_THREADS} "
        f"threads with peak RSS < {TARGET_PEAK_RSS_MB / 1024:g} GB; measured {speed:.2f} "
        f"audio-s/s ({judged_on}), {rss:.0f} MB: {'met' if met else 'NOT met'}"
    )
    print(
        f"anchor: RAVE v2_small ~{RAVE_V2_SMALL_AUDIO_S_PER_S:g} audio-s/s on 2 threads; "
        f"default wave VAE / RAVE v2_small = {speed / RAVE_V2_SMALL_AUDIO_S_PER_S:.2f}x"
    )
    return summary


def write_json(results: Path, args: argparse.Namespace, rows: list[dict], summary: dict) -> Path:
    results.mkdir(parents=True, exist_ok=True)
    stamp = datetime.date.today().isoformat()
    path = results / f"train_speed-{stamp}-{platform.node()}.json"
    payload = {
        "machine": {
            "host": platform.node(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_start": args.load_average,
            "torch": rows[0]["torch"] if rows else None,
        },
        "settings": {
            "steps": args.steps,
            "warmup": args.warmup,
            "tiny": args.tiny,
            "set": args.set,
            "wait_quiet_seconds": args.wait_quiet,
        },
        "rows": rows,
        "summary": summary,
    }
    path.write_text(json.dumps(payload, indent=2))
    return path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--configs", type=Path, nargs="+", default=list(DEFAULT_CONFIGS))
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="config override applied to every config (repeatable)",
    )
    parser.add_argument("--tiny", action="store_true", help="tiny models and batches (tests)")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help=f"before each run, wait up to this long for other processes to use less than "
        f"{QUIET_CORES:g} cores (0: start at once)",
    )
    parser.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.load_average = os.getloadavg()  # other work on the machine skews every figure
    if args.child:
        print(json.dumps(time_steps(json.loads(args.child))))
        return 0
    if args.steps < 1 or args.warmup < 0:
        raise SystemExit("--steps must be >= 1 and --warmup >= 0")
    rows = []
    for config in args.configs:
        overrides = config_overrides(config, args.tiny, args.set)
        for threads in args.threads:
            spec = {
                "config": str(config),
                "overrides": overrides,
                "threads": threads,
                "steps": args.steps,
                "warmup": args.warmup,
            }
            busy_before = wait_for_quiet(args.wait_quiet)
            rows.append(
                {
                    "config": config.name,
                    "threads": threads,
                    "other_cpu_cores_before": busy_before,
                    **measure(spec),
                }
            )
    print_table(rows)
    summary = summarise(rows)
    path = write_json(args.results_dir, args, rows, summary)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
