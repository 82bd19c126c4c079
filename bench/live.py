"""Benchmark `helius live` in real time without a sound card: does the model keep up?

A paced fake sound card calls the live session's callback once per block period from its own
thread, as PortAudio does, with generated input, for each config and block size (untrained
weights, one thread, 44.1 kHz: speed does not depend on training). It counts underruns (the
model fell behind and silence was played), overruns (input dropped), and times every callback
(it must only copy) and every model block (load = compute time / block duration). The tests
check the same session deterministically (tests/generate/test_live.py); the timing lives here.
Prints a table and writes bench/results/live-<date>-<host>.json.

    python bench/live.py [--seconds 10] [--blocks 512 2048] [--configs config.yaml lowlatency.yaml]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import threading
import time
from pathlib import Path

from helius.files import atomic_write_text

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
SAMPLE_RATE = 44100


class PacedSoundCard:
    """Stands in for sounddevice.Stream: one callback per block period, on its own thread."""

    def __init__(self, seconds, *, samplerate, blocksize, device, channels, dtype, callback):
        import numpy as np

        self.blocks = max(1, round(seconds * samplerate / blocksize))
        self.period_seconds = blocksize / samplerate
        noise = np.random.default_rng(0).standard_normal((blocksize, channels))
        self.input = (0.1 * noise).astype(dtype)
        self.callback = callback
        self.callback_seconds: list[float] = []
        self.done = threading.Event()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped = True
        self._thread.join()

    def close(self) -> None:
        pass

    def _run(self) -> None:
        import numpy as np

        due = time.perf_counter()
        for _ in range(self.blocks):
            if self._stopped:
                break
            due += self.period_seconds
            time.sleep(max(0.0, due - time.perf_counter()))
            out = np.empty_like(self.input)
            started = time.perf_counter()
            self.callback(self.input, out, len(out), None, None)
            self.callback_seconds.append(time.perf_counter() - started)
        self.done.set()


def measure(config_name: str, block: int, seconds: float, overrides: list[str]) -> dict:
    import torch

    from helius.config import load_config
    from helius.generate.live import LiveSession
    from helius.generate.stream import StreamProcessor
    from helius.models import build_model

    torch.set_num_threads(1)
    torch.manual_seed(0)
    settings = [f"data.sample_rate={SAMPLE_RATE}", *overrides]
    config = load_config(REPO / "configs" / config_name, settings)
    vae = build_model(config.model, SAMPLE_RATE).eval()
    cards: list[PacedSoundCard] = []

    def sound_card(**options) -> PacedSoundCard:
        cards.append(PacedSoundCard(seconds, **options))
        return cards[-1]

    session = LiveSession(StreamProcessor(vae), block_size=block, stream_factory=sound_card)
    session.start()
    try:
        cards[0].done.wait()
    finally:
        stats = session.stop()
    session.check()
    callbacks = cards[0].callback_seconds
    return {
        "config": config_name,
        "block": block,
        "seconds": seconds,
        "callbacks": stats.callbacks,
        "model_blocks": stats.blocks,
        "underruns": stats.underruns,
        "overruns": stats.overruns,
        "worst_callback_ms": 1000 * max(callbacks),
        "mean_load": stats.mean_load,
        "worst_load": stats.worst_load,
        "latency_ms": 1000 * session.latency_samples / SAMPLE_RATE,
    }


def table(rows: list[dict]) -> str:
    lines = [
        "| config | block | callbacks | underruns | overruns | worst callback ms "
        "| load mean / worst | latency ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row['config']} | {row['block']} | {row['callbacks']} | {row['underruns']} | "
            f"{row['overruns']} | {row['worst_callback_ms']:.2f} | "
            f"{row['mean_load']:.2f} / {row['worst_load']:.2f} | {row['latency_ms']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="real time per run")
    parser.add_argument("--blocks", type=int, nargs="+", default=[512, 2048])
    parser.add_argument("--configs", nargs="+", default=["config.yaml", "lowlatency.yaml"])
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")
    args = parser.parse_args(argv)

    rows = [
        measure(config, block, args.seconds, args.overrides)
        for config in args.configs
        for block in args.blocks
    ]
    print(table(rows))
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.date.today().isoformat()
    path = args.results_dir / f"live-{stamp}-{platform.node()}.json"
    machine = {"host": platform.node(), "threads": 1, "python": platform.python_version()}
    atomic_write_text(path, json.dumps({"machine": machine, "rows": rows}, indent=2))
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
