"""Benchmark the explorer's decode latency: one latent to a sound, end to end through HTTP.

A real uvicorn server on 127.0.0.1 (a free port, in a background thread) serves the default
clip model (configs/clip.yaml: 1 s at 44.1 kHz; untrained weights, as speed does not depend
on training) on the CPU. A client posts a fresh random latent to /api/decode for every request
over one keep-alive connection, as the page does while a slider moves, and reads the WAV.
The model's own decode time (in process, no HTTP) is measured too, paired request by
request, so the server's share of the latency is visible on a busy machine. Prints a
markdown table and writes bench/results/explore-<date>-<host>.json.

    python bench/explore.py [--requests 100] [--set model.latent_dim=16] [--threads 2]
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import platform
import statistics
import sys
import tempfile
import threading
import time
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


def serve(app):
    """Start uvicorn on a free 127.0.0.1 port in a thread; returns (server, thread, port)."""
    import uvicorn

    from helius.ui.training import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the explorer server did not start")
        time.sleep(0.02)
    return server, thread, port


def run(config_path: Path, overrides: list[str], requests: int, threads: int | None) -> dict:
    import torch

    from helius.config import load_config
    from helius.models import build_model
    from helius.models.checkpoint import save_checkpoint
    from helius.ui import create_app

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    config = load_config(config_path, overrides)
    model = build_model(config.model, config.data.sample_rate, 1 if config.data.mono else 2)
    with tempfile.TemporaryDirectory(prefix="helius-bench-explore-") as folder:
        checkpoint = Path(folder) / "clip.pt"
        payload = {"config": config.model_dump(mode="json"), "model": model.state_dict()}
        save_checkpoint(checkpoint, {"kind": "vae", **payload, "ema": None})
        app = create_app(checkpoint, run_dir=Path(folder) / "runs")
        session = app.state.explorer.session
        generator = torch.Generator().manual_seed(1)
        latents = torch.randn(requests + WARMUP, session.latent_dim, generator=generator)

        server, thread, port = serve(app)
        over_http, in_process, wav_bytes = [], [], 0
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            # Each HTTP request is paired with an in-process decode of the same latent right
            # after it, so load from other processes shifts both alike.
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
                started = time.perf_counter()
                audio = session.decode(latent)
                decoded = time.perf_counter() - started
                if index >= WARMUP:
                    over_http.append(elapsed)
                    in_process.append(decoded)
                    wav_bytes = len(wav)
            connection.close()
        finally:
            server.should_exit = True
            thread.join(timeout=10)
    seconds = audio.shape[-1] / session.sample_rate
    return {
        "config": str(config_path.relative_to(REPO)) if config_path.is_relative_to(REPO) else "",
        "overrides": overrides,
        "kind": session.kind,
        "latent_dim": session.latent_dim,
        "sample_rate": session.sample_rate,
        "audio_seconds": seconds,
        "wav_bytes": wav_bytes,
        "params": sum(parameter.numel() for parameter in model.parameters()),
        "torch_threads": torch.get_num_threads(),
        "rows": [
            summary("decode over HTTP (POST /api/decode, WAV back)", over_http),
            summary("model decode in process (no HTTP)", in_process),
            summary(
                "HTTP share (each request minus its paired in-process decode)",
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
