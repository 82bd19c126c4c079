"""Benchmark the learned vocoder against Griffin-Lim (32 and 128 iterations) on held-out audio.

Trains a vocoder (`model.kind=vocoder`) on a `helius prep` folder's train index for a CPU
budget with the shared trainer, then resynthesises the folder's validation segments (whole
source files the training never saw) from their log-mel frames with the vocoder and with
Griffin-Lim, and measures MR-STFT and mel distance (helius.metrics) and speed in x real time
on one thread. A --checkpoint skips the training. Prints a table and writes
bench/results/vocoder-<date>-<host>.json with the machine's load average at the start and the
end (other work on a shared machine slows every speed figure), threads and torch version.

    python bench/vocoder.py --data /tmp/voc_data --minutes 5 [--keep DIR] [--set model.width=128]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from record import held_out, write_result  # bench/ is on sys.path

BENCH_DIR = Path(__file__).resolve().parent
GRIFFIN_LIM_ITERATIONS = (32, 128)


def train_vocoder(args: argparse.Namespace, workdir: Path) -> tuple[torch.nn.Module, dict]:
    """A vocoder trained for args.minutes (or args.steps) on args.data; (model, run facts)."""
    from helius.config import load_config
    from helius.harmonic.vocoder_task import VocoderTask
    from helius.train.trainer import fit

    overrides = [
        "model.kind=vocoder",
        f"data.train_index={args.data / 'train_index.txt'}",
        f"data.val_index={args.data / 'val_index.txt'}",
        f"data.sample_rate={args.sample_rate}",
        f"data.segment_seconds={args.segment_seconds}",
        f"train.max_minutes={args.minutes}",
        f"train.max_steps={args.steps}",
        f"train.val_every_steps={args.steps}",
        "train.device=cpu",
        f"train.checkpoint_dir={workdir / 'checkpoints'}",
        f"train.log_dir={workdir / 'runs'}",
        *args.set,
    ]
    config = load_config(None, overrides)
    torch.set_num_threads(args.train_threads)
    started = time.perf_counter()
    result = fit(config, VocoderTask(config))
    facts = {
        "steps": result.step,
        "train_minutes": (time.perf_counter() - started) / 60,
        "train_threads": args.train_threads,
        "final_train_loss": result.losses[-1] if result.losses else None,
        "config": config.model_dump(mode="json"),
    }
    return result.model.eval(), facts


def held_out_audio(args: argparse.Namespace, hop: int, count: int) -> torch.Tensor:
    """(N, 1, T) validation segments, evenly spread over the index, cut to whole mel hops."""
    length = int(args.segment_seconds * args.sample_rate) // hop * hop
    return held_out(args.data / "val_index.txt", args.sample_rate, length, count)


@torch.no_grad()
def measure(name: str, inverter: torch.nn.Module, audio: torch.Tensor, sample_rate: int) -> dict:
    """Distances of `inverter`'s resynthesis of `audio` and its speed on one thread."""
    from helius import metrics

    torch.set_num_threads(1)
    mel = inverter.mel(audio)
    inverter(mel[:1, :, :8])  # warm up (first-call allocations)
    started = time.perf_counter()
    output = torch.cat([inverter(mel[index : index + 1]) for index in range(mel.shape[0])])
    wall = time.perf_counter() - started
    seconds = audio.shape[0] * audio.shape[-1] / sample_rate
    return {
        "method": name,
        "mrstft": float(metrics.mrstft_distance(output, audio)),
        "mel": float(metrics.mel_distance(output, audio, sample_rate)),
        "x_real_time_1_thread": seconds / wall,
        "audio_seconds": seconds,
    }


def print_table(rows: list[dict]) -> None:
    print(f"{'method':<16} {'MR-STFT':>8} {'mel':>7} {'x real time (1 thread)':>23}")
    for row in rows:
        print(
            f"{row['method']:<16} {row['mrstft']:>8.3f} {row['mel']:>7.3f} "
            f"{row['x_real_time_1_thread']:>23.1f}"
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a helius prep folder")
    parser.add_argument("--sample-rate", type=int, default=22050)
    parser.add_argument("--segment-seconds", type=float, default=2.0, help="as prepared")
    parser.add_argument("--minutes", type=float, default=5.0, help="training budget")
    parser.add_argument("--steps", type=int, default=100000, help="training step limit")
    parser.add_argument("--train-threads", type=int, default=2)
    parser.add_argument("--segments", type=int, default=24, help="held-out segments measured")
    parser.add_argument("--checkpoint", type=Path, help="measure this vocoder, train none")
    parser.add_argument("--keep", type=Path, help="train into this folder and keep it")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_start = os.getloadavg()  # other work on the machine skews every figure
    from helius import progress
    from helius.harmonic.griffin_lim import GriffinLim
    from helius.models.checkpoint import load_model

    progress.set_enabled(sys.stderr.isatty())
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as scratch:
        workdir = args.keep or scratch  # --keep: the checkpoints stay (e.g. for mel_vs_wave)
        if args.checkpoint:
            model, config = load_model(args.checkpoint, kind="vocoder")
            facts = {"checkpoint": str(args.checkpoint), "config": config.model_dump(mode="json")}
        else:
            model, facts = train_vocoder(args, Path(workdir))
    audio = held_out_audio(args, model.hop_length, args.segments)
    rows = [measure("vocoder", model, audio, args.sample_rate)]
    for iterations in GRIFFIN_LIM_ITERATIONS:
        griffin_lim = GriffinLim(model.mel, iterations=iterations)
        rows.append(measure(f"griffin_lim_{iterations}", griffin_lim, audio, args.sample_rate))
    print_table(rows)
    path = write_result(
        args.results_dir,
        "vocoder",
        load_start,
        data=str(args.data),
        held_out_segments=audio.shape[0],
        training=facts,
        rows=rows,
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
