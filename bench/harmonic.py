"""Benchmark HarmonicVAE's mel VAE: the psychoacoustic ablation, mlp vs conv, and tuning speed.

Each row trains a mel VAE (`model.kind=mel_vae`) for the same CPU budget on a `helius prep`
folder's train index with the shared trainer, then measures on the folder's validation segments
(whole source files the training never saw): log-mel L1 of the reconstruction (posterior mean)
and, for the audio that comes out through Griffin-Lim, MR-STFT and mel distance to the input
(helius.metrics). Baselines measured the same way: the training set's average patch (a static
output that follows nothing) and the input's own mel through the same Griffin-Lim (the ceiling
of any mel model heard through it). `--tune-trials N` also times an Optuna study of N one-epoch
trials (trials per hour). Prints a table; writes bench/results/harmonic-<date>-<host>.json with
the load average at start and end.

    python bench/harmonic.py --data /tmp/voc_data --minutes 3 [--rows l1,mse] [--tune-trials 4]
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
# name -> overrides: the ablation of the objective's terms (each on its own), then the conv net.
ROWS = {
    "l1": ["train.reconstruction=l1", "train.harmonicity_weight=0"],
    "mse": ["train.reconstruction=mse", "train.harmonicity_weight=0"],
    "masked_l1": ["train.reconstruction=masked_l1", "train.harmonicity_weight=0"],
    "l1+harmonicity": ["train.reconstruction=l1", "train.harmonicity_weight=0.1"],
    "masked_l1+harmonicity": ["train.reconstruction=masked_l1", "train.harmonicity_weight=0.1"],
    "conv masked_l1": [
        "model.architecture=conv",
        "train.reconstruction=masked_l1",
        "train.harmonicity_weight=0",
    ],
    "conv masked_l1+harmonicity": [
        "model.architecture=conv",
        "train.reconstruction=masked_l1",
        "train.harmonicity_weight=0.1",
    ],
}


def base_overrides(args: argparse.Namespace, workdir: Path) -> list[str]:
    return [
        "model.kind=mel_vae",
        f"data.train_index={args.data / 'train_index.txt'}",
        f"data.val_index={args.data / 'val_index.txt'}",
        f"data.sample_rate={args.sample_rate}",
        f"model.segment_length={args.segment_seconds}",
        f"train.max_minutes={args.minutes}",
        "train.max_steps=null",
        "train.val_every_steps=1000000",
        "train.tensorboard=false",
        "train.device=cpu",
        f"train.checkpoint_dir={workdir}",
        f"train.log_dir={workdir / 'logs'}",
        *args.set,
    ]


def train_row(name: str, args: argparse.Namespace, workdir: Path):
    from helius.config import load_config
    from helius.harmonic.mel_task import MelVAETask
    from helius.train.trainer import fit

    config = load_config(None, [*base_overrides(args, workdir / name), *ROWS[name]])
    torch.set_num_threads(args.train_threads)
    torch.manual_seed(0)
    started = time.perf_counter()
    result = fit(config, MelVAETask(config))
    facts = {
        "steps": result.step,
        "epochs": result.epoch,
        "train_minutes": (time.perf_counter() - started) / 60,
        "audio_seconds_trained": result.audio_seconds,
        "overrides": ROWS[name],
    }
    return result.model.eval(), facts


def segments(index: Path, args: argparse.Namespace, count: int) -> torch.Tensor:
    return held_out(index, args.sample_rate, int(args.segment_seconds * args.sample_rate), count)


@torch.no_grad()
def measure(name: str, rebuilt_mel: torch.Tensor, mel: torch.Tensor, audio: torch.Tensor,
            inverter, sample_rate: int) -> dict:  # fmt: skip
    """Log-mel L1 of `rebuilt_mel` to the input's, and distances of its audio to the input."""
    from helius import metrics

    output = torch.cat([inverter(rebuilt_mel[i : i + 1]) for i in range(rebuilt_mel.shape[0])])
    target = audio[..., : output.shape[-1]]
    return {
        "row": name,
        "log_mel_l1": float((rebuilt_mel - mel).abs().mean()),
        "mrstft": float(metrics.mrstft_distance(output, target)),
        "mel": float(metrics.mel_distance(output, target, sample_rate)),
    }


def tuning_throughput(args: argparse.Namespace, workdir: Path) -> dict:
    from helius.config import load_config
    from helius.harmonic.tune import tune

    overrides = base_overrides(args, workdir / "tune")
    overrides = [o for o in overrides if not o.startswith("train.max_minutes")]
    config = load_config(None, [*overrides, "train.epochs=1", "train.validate_every_epoch=true"])
    torch.set_num_threads(args.train_threads)
    started = time.perf_counter()
    result = tune(config, workdir / "tune", args.tune_trials)
    hours = (time.perf_counter() - started) / 3600
    return {
        "trials": args.tune_trials,
        "epochs_per_trial": 1,
        "train_segments": len((args.data / "train_index.txt").read_text().split()),
        "trials_per_hour": args.tune_trials / hours,
        "pruned": result.trials_pruned,
        "best_params": result.best_params,
    }


def print_table(rows: list[dict]) -> None:
    print(f"{'row':<28} {'log-mel L1':>10} {'MR-STFT':>8} {'mel':>7} {'steps':>6}")
    for row in rows:
        print(
            f"{row['row']:<28} {row['log_mel_l1']:>10.3f} {row['mrstft']:>8.3f} "
            f"{row['mel']:>7.3f} {row.get('steps', ''):>6}"
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a helius prep folder")
    parser.add_argument("--sample-rate", type=int, default=22050)
    parser.add_argument("--segment-seconds", type=float, default=2.0, help="patch length")
    parser.add_argument("--minutes", type=float, default=3.0, help="training budget per row")
    parser.add_argument("--train-threads", type=int, default=2)
    parser.add_argument("--segments", type=int, default=48, help="held-out segments measured")
    parser.add_argument("--rows", default=",".join(ROWS), help="comma-separated row names")
    parser.add_argument("--griffin-lim-iterations", type=int, default=32)
    parser.add_argument("--tune-trials", type=int, default=0, help="time a study of N trials")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_start = os.getloadavg()  # other work on the machine skews every figure
    from helius import progress
    from helius.harmonic.griffin_lim import GriffinLim

    progress.set_enabled(sys.stderr.isatty())
    names = [name for name in args.rows.split(",") if name]
    unknown = sorted(set(names) - set(ROWS))
    if unknown:
        raise SystemExit(f"unknown rows {unknown}; rows are {', '.join(ROWS)}")
    audio = segments(args.data / "val_index.txt", args, args.segments)
    train_audio = segments(args.data / "train_index.txt", args, 256)
    rows, facts, tuning = [], {}, None
    with tempfile.TemporaryDirectory() as workdir:
        for name in names:
            model, facts[name] = train_row(name, args, Path(workdir))
            inverter = GriffinLim(model.mel, iterations=args.griffin_lim_iterations)
            torch.set_num_threads(args.train_threads)
            with torch.no_grad():
                mel = model.features(audio)
                rebuilt = model.decode(model.encode(mel)[0])
            if not rows:  # the baselines, on the first model's features (all rows share them)
                average = model.features(train_audio).mean(0, keepdim=True).expand_as(mel)
                rows.append(measure("static average patch", average, mel, audio, inverter,
                                    args.sample_rate))  # fmt: skip
                rows.append(measure("input mel (ceiling)", mel, mel, audio, inverter,
                                    args.sample_rate))  # fmt: skip
            rows.append({**measure(name, rebuilt, mel, audio, inverter, args.sample_rate),
                         "steps": facts[name]["steps"]})  # fmt: skip
            print_table(rows[-1:])
        if args.tune_trials:
            tuning = tuning_throughput(args, Path(workdir))
    print_table(rows)
    if tuning:
        print(f"tuning: {tuning['trials_per_hour']:.1f} trials/hour ({tuning})")
    path = write_result(
        args.results_dir,
        "harmonic",
        load_start,
        data=str(args.data),
        held_out_segments=audio.shape[0],
        minutes_per_row=args.minutes,
        train_threads=args.train_threads,
        griffin_lim_iterations=args.griffin_lim_iterations,
        training=facts,
        rows=rows,
        tuning=tuning,
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
