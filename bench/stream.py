"""Benchmark streaming and dreaming on one CPU thread at each config's own sample rate: real-time
factors, latency, RSS.

Each measurement runs in a fresh process (so peak RSS is its own) with untrained weights (speed
does not depend on training):
  * streaming encode + decode through `StreamProcessor` for block sizes 512, 2048 and 8192,
    for the default causal wave VAE (configs/config.yaml) and the low-latency preset
    (configs/lowlatency.yaml), with the algorithmic latency (block + one frame + PQMF delay),
    and the default model again with int8 weights (`--precision int8`);
  * dream real-time factor for 60 s with the GRU and the Transformer prior (prior defaults);
  * peak RSS of dreaming 10 s and 10 min with the GRU prior (flat memory is the promise).
Each row records the sample rate it ran at and the cores other processes used meanwhile (other
work on a shared machine slows every figure); the JSON records the load average at the start.
Prints a table and writes bench/results/stream-<date>-<host>.json.

    python bench/stream.py [--dream-seconds 60] [--long-seconds 600] [--blocks 512 2048 8192]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

from train_speed import busy_cpu_seconds, other_cpu_cores, own_cpu_seconds  # bench/ is on sys.path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
TARGETS = {  # (config, block) -> x real time; dreaming with the GRU prior
    ("config.yaml", 2048): 20.0,
    ("lowlatency.yaml", 512): 8.0,
    "dream_gru": 10.0,
}


def child(spec: dict) -> dict:
    """One measurement in this process (called with --child)."""
    import numpy as np
    import torch

    from helius.config import load_config
    from helius.models import build_model

    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = load_config(REPO / "configs" / spec["config"], spec.get("overrides", []))
    sample_rate = config.data.sample_rate
    vae = build_model(config.model, sample_rate).eval()
    load_before = (busy_cpu_seconds(), own_cpu_seconds(), time.perf_counter())
    if spec["what"] == "stream":
        from helius.generate.stream import StreamProcessor

        processor = StreamProcessor(vae, precision=spec.get("precision", "float32"))
        block = spec["block"]
        audio = np.random.default_rng(0).standard_normal((1, block)).astype(np.float32) * 0.1
        for _ in range(max(3, 8192 // block)):  # warm-up, and fill the caches
            processor.process(audio)
        blocks = max(20, int(spec["seconds"] * sample_rate / block))
        started = time.perf_counter()
        for _ in range(blocks):
            processor.process(audio)
        elapsed = time.perf_counter() - started
        seconds = blocks * block / sample_rate
        latency = block + processor.latency_samples
        result = {"x_realtime": seconds / elapsed, "latency_ms": 1000 * latency / sample_rate}
    else:
        from helius.generate.dream import dream_audio
        from helius.models.prior import build_prior

        prior = build_prior(config.prior, vae.latent_dim).eval()
        started = time.perf_counter()
        samples = sum(b.shape[1] for b in dream_audio(vae, prior, spec["seconds"]))
        elapsed = time.perf_counter() - started
        result = {"x_realtime": samples / sample_rate / elapsed}
    result["sample_rate"] = sample_rate
    result["other_cpu_cores"] = other_cpu_cores(*load_before)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["params"] = sum(p.numel() for p in vae.parameters())
    return result


def measure(spec: dict) -> dict:
    completed = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        check=False,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    if completed.returncode != 0:
        raise RuntimeError(f"measurement {spec} failed:\n{completed.stderr}")
    return {**spec, **json.loads(completed.stdout.splitlines()[-1])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--blocks", type=int, nargs="+", default=[512, 2048, 8192])
    parser.add_argument("--stream-seconds", type=float, default=20.0, help="audio per stream run")
    parser.add_argument("--dream-seconds", type=float, default=60.0)
    parser.add_argument("--short-seconds", type=float, default=10.0, help="RSS: short dream")
    parser.add_argument("--long-seconds", type=float, default=600.0, help="RSS: long dream")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0

    load_average = os.getloadavg()  # other work on the machine skews every figure
    base = {"overrides": args.overrides}
    rows = []
    for config in ("config.yaml", "lowlatency.yaml"):
        for block in args.blocks:
            spec = {**base, "what": "stream", "config": config, "block": block}
            rows.append(measure({**spec, "seconds": args.stream_seconds}))
    for block in args.blocks:  # int8 weights (--precision int8): the stft model only
        spec = {**base, "what": "stream", "config": "config.yaml", "block": block}
        rows.append(measure({**spec, "seconds": args.stream_seconds, "precision": "int8"}))
    for kind in ("gru", "transformer"):
        overrides = [*args.overrides, f"prior.kind={kind}"]
        spec = {"what": "dream", "config": "config.yaml", "overrides": overrides}
        rows.append(measure({**spec, "seconds": args.dream_seconds, "prior": kind}))
    for seconds in (args.short_seconds, args.long_seconds):
        spec = {"what": "dream", "config": "config.yaml", "overrides": args.overrides}
        rows.append(measure({**spec, "seconds": seconds, "prior": "gru", "memory": True}))

    print(table(rows))
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.date.today().isoformat()
    path = args.results_dir / f"stream-{stamp}-{platform.node()}.json"
    machine = {
        "host": platform.node(),
        "threads": 1,
        "python": platform.python_version(),
        "load_average_at_start": load_average,
    }
    path.write_text(json.dumps({"machine": machine, "rows": rows, "targets": _targets()}, indent=2))
    print(f"\nwrote {path}")
    return 0


def _targets() -> dict:
    return {str(key): value for key, value in TARGETS.items()}


def _label(row: dict) -> str:
    if row["what"] == "stream":
        int8 = ", int8" if row.get("precision") == "int8" else ""
        return f"stream {row['config']}, block {row['block']}{int8}"
    suffix = " (memory)" if row.get("memory") else ""
    return f"dream {row['seconds']:g} s, {row['prior']} prior{suffix}"


def table(rows: list[dict]) -> str:
    lines = [
        "| what | kHz | x real time | target | latency ms | peak RSS MB | other cores |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        if row["what"] == "stream":
            target = TARGETS.get((row["config"], row["block"]))
        else:
            target = (
                TARGETS["dream_gru"] if row["prior"] == "gru" and not row.get("memory") else None
            )
        latency = f"{row['latency_ms']:.1f}" if "latency_ms" in row else ""
        others = "?" if row["other_cpu_cores"] is None else f"{row['other_cpu_cores']:.1f}"
        lines.append(
            f"| {_label(row)} | {row['sample_rate'] / 1000:g} | {row['x_realtime']:.1f} | "
            f"{'' if target is None else f'>= {target:g}'} | {latency} | {row['peak_rss_mb']:.0f} "
            f"| {others} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
