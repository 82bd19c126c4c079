"""Benchmark the explorer's decode latency: one latent to a sound, end to end through HTTP.

`helius explore` runs in a child process on a free 127.0.0.1 port, exactly as a user starts
it, serving the default clip model (configs/clip.yaml: 1 s at 44.1 kHz; untrained weights, as
speed does not depend on training) on the CPU. A client posts a fresh random latent to
/api/decode for every request over one keep-alive connection, as the page does while a slider
moves, and reads the WAV. The model's own decode time (in this process, no HTTP) is measured
too, after the server has stopped, for the same latents, so the server's share of the latency
is visible. Prints a
markdown table and writes bench/results/explore-<date>-<host>.json.

    python bench/explore.py [--requests 100] [--set model.latent_dim=16] [--threads 2]
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
TARGET_MEDIAN_MS = 50.0
WARMUP = 3  # requests not counted


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def summary(name: str, seconds: list[float]) -> dict:
    milliseconds = [1000 * value for value in seconds]
    return {
        "what": name,
        "requests": len(milliseconds),
        "median_ms": statistics.median(milliseconds),
        "p95_ms": percentile(milliseconds, 0.95),
        "min_ms": min(milliseconds),
    }


def serve(checkpoint: Path, run_dir: Path, threads: int | None):
    """Start `helius explore` on a free 127.0.0.1 port; returns (process, port) once it answers."""
    from helius.ui.training import free_port

    port = free_port()
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    command = [sys.executable, "-m", "helius", "explore", "--vae_ckpt", str(checkpoint)]
    command += ["--port", str(port), "--run_dir", str(run_dir)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5):
                return process, port
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("the explorer server did not start") from None
            time.sleep(0.1)


def run(config_path: Path, overrides: list[str], requests: int, threads: int | None) -> dict:
    import torch

    from helius.config import load_config
    from helius.models import build_model
    from helius.models.checkpoint import load_vae, save_checkpoint

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    config = load_config(config_path, overrides)
    model = build_model(config.model, config.data.sample_rate, 1 if config.data.mono else 2)
    with tempfile.TemporaryDirectory(prefix="helius-bench-explore-") as folder:
        checkpoint = Path(folder) / "clip.pt"
        payload = {"config": config.model_dump(mode="json"), "model": model.state_dict()}
        save_checkpoint(checkpoint, {"kind": "vae", **payload, "ema": None})
        # The in-process reference decodes on this (main) thread only, as the server decodes
        # on its one model thread only (see ExplorerSession).
        local_model, _ = load_vae(checkpoint)
        generator = torch.Generator().manual_seed(1)
        latents = torch.randn(requests + WARMUP, config.model.latent_dim, generator=generator)

        server, port = serve(checkpoint, Path(folder) / "runs", threads)
        over_http, in_process, wav_bytes = [], [], 0
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            for index, latent in enumerate(latents):
                body = json.dumps({"latent": latent.tolist()})
                started = time.perf_counter()
                connection.request(
                    "POST", "/api/decode", body, {"Content-Type": "application/json"}
                )
                response = connection.getresponse()
                wav = response.read()
                elapsed = time.perf_counter() - started
                if response.status != 200:
                    raise RuntimeError(f"decode answered {response.status}: {wav[:200]!r}")
                if index >= WARMUP:
                    over_http.append(elapsed)
                    wav_bytes = len(wav)
            connection.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
        # The same latents decoded here, after the server has stopped: interleaving the two
        # would have each process's idle CPU threads spin while the other one decodes.
        with torch.no_grad():
            for index, latent in enumerate(latents):
                started = time.perf_counter()
                audio = local_model.decode(latent[None])[0]
                if index >= WARMUP:
                    in_process.append(time.perf_counter() - started)
    sample_rate = config.data.sample_rate
    seconds = audio.shape[-1] / sample_rate
    return {
        "config": str(config_path.relative_to(REPO)) if config_path.is_relative_to(REPO) else "",
        "overrides": overrides,
        "kind": config.model.kind,
        "latent_dim": config.model.latent_dim,
        "sample_rate": sample_rate,
        "audio_seconds": seconds,
        "wav_bytes": wav_bytes,
        "params": sum(parameter.numel() for parameter in model.parameters()),
        "torch_threads": torch.get_num_threads(),
        "rows": [
            summary("decode over HTTP (POST /api/decode, WAV back)", over_http),
            summary("model decode in process (no HTTP)", in_process),
            summary(
                "HTTP share (each request minus the in-process decode of its latent)",
                [web - model for web, model in zip(over_http, in_process, strict=True)],
            ),
        ],
    }


def table(result: dict) -> str:
    lines = [
        f"{result['config'] or 'config'} {' '.join(result['overrides'])}: "
        f"{result['audio_seconds']:g} s of audio at {result['sample_rate']} Hz per request, "
        f"{result['torch_threads']} torch threads",
        "",
        "| what | requests | median ms | p95 ms | target |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for index, row in enumerate(result["rows"]):
        target = f"median < {TARGET_MEDIAN_MS:g} ms" if index == 0 else ""
        lines.append(
            f"| {row['what']} | {row['requests']} | {row['median_ms']:.1f} | "
            f"{row['p95_ms']:.1f} | {target} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "clip.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")
    args = parser.parse_args(argv)

    result = run(args.config.resolve(), args.overrides, args.requests, args.threads)
    http_row = result["rows"][0]
    result["target_median_ms"] = TARGET_MEDIAN_MS
    result["meets_target"] = http_row["median_ms"] < TARGET_MEDIAN_MS
    print(table(result))
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.date.today().isoformat()
    path = args.results_dir / f"explore-{stamp}-{platform.node()}.json"
    machine = {"host": platform.node(), "python": platform.python_version()}
    path.write_text(json.dumps({"machine": machine, **result}, indent=2) + "\n")
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
