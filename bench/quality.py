"""Benchmark reconstruction quality after a fixed CPU training budget, against two baselines.

For each config (default: the streaming wave VAE of configs/config.yaml and the clip VAE of
configs/clip.yaml) the built-in synthesizer writes a data set (10-second textures for the wave
VAE, 1-second drum one-shots for the clip VAE), `helius prep` cuts it at the config's sample
rate and segment length with a tenth of the files held out, and `helius.train.trainer.fit`
trains on CPU for `--minutes` of wall clock (train.max_minutes). The validation set is then
scored by VAETask.validate (MR-STFT distance, mel distance, SI-SDR; decoding from z = mu; a
causal wave VAE's constant output delay taken out) for:
  * silence: an output of zeros (MR-STFT stays finite thanks to its eps; SI-SDR is the
    -100 dB floor, as silence holds none of the target),
  * untrained: the model as fit starts it (same seed, step 0),
  * trained: the model after the budget.
Each baseline row shows trained / baseline for the distances (lower is better, target < 1)
and trained - baseline for SI-SDR in dB (a ratio of dB values is meaningless; target > 0).
Training waits for the machine to go quiet first (--wait-quiet); "busy" is how many cores
other processes used while it trained (other work means fewer steps in the budget).
Prints a table and writes bench/results/quality-<date>-<host>.json.

    python bench/quality.py [--minutes 10] [--configs configs/config.yaml configs/clip.yaml]
                            [--work-dir DIR] [--set section.key=value ...] [--tiny]
                            [--wait-quiet 600]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import quality_real  # the sibling script: the real-music half
import torch
from torch import nn
from torch.utils.data import DataLoader
from train_speed import (  # the sibling script (bench/ is on sys.path)
    TINY_OVERRIDES,  # --tiny: the same tiny models as the speed benchmark
    busy_cpu_seconds,
    other_cpu_cores,
    own_cpu_seconds,
    wait_for_quiet,
)

from helius import progress
from helius.audio.synth import write_demo_dataset
from helius.config import HeliusConfig, load_config
from helius.data.prep import prepare
from helius.data.segment import PrepSettings
from helius.models.base import VAEOutput
from helius.train.runtime import seed_everything
from helius.train.trainer import VALIDATION_SEED, fit
from helius.train.vae_task import VAETask

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
DEFAULT_CONFIGS = (REPO / "configs" / "config.yaml", REPO / "configs" / "clip.yaml")
METRICS = ("mrstft", "mel", "si_sdr", "loudness_diff_db", "active_dims")
SOURCE_RATE = 44100  # the synthesizer's rate; prep resamples to the config's


@dataclass(frozen=True)
class DataPlan:
    """How much built-in audio to generate, and the share of files held out."""

    oneshots: int = 480  # 1 s drum one-shots (clip VAE): about 48 for validation
    textures: int = 60  # textures (wave VAE): about 6 files, 30 segments for validation
    texture_seconds: float = 10.0
    val_fraction: float = 0.1


TINY_PLAN = DataPlan(oneshots=16, textures=6, texture_seconds=2.0, val_fraction=0.25)


class Silence(nn.Module):
    """A stand-in VAE whose output is all zeros: the floor any trained model must beat."""

    def __init__(self) -> None:
        super().__init__()
        # VAETask.validate finds the device from the parameters.
        self.anchor = nn.Parameter(torch.zeros(()), requires_grad=False)

    def forward(self, x: torch.Tensor, step: int | None = None) -> VAEOutput:
        # Two latent dims: latent_health fails on one (torch.cov then returns a scalar).
        latent = x.new_zeros(x.shape[0], 2)
        return VAEOutput(audio=torch.zeros_like(x), mu=latent, logvar=latent, z=latent)


# --- data ----------------------------------------------------------------------------------


def generate_audio(folder: Path, plan: DataPlan) -> Path:
    """The built-in one-shots and textures in `folder`/oneshots and `folder`/textures."""
    write_demo_dataset(
        folder,
        n_oneshots=plan.oneshots,
        n_textures=plan.textures,
        seed=0,
        sample_rate=SOURCE_RATE,
        texture_seconds=plan.texture_seconds,
    )
    return folder


def prepare_data(audio: Path, out: Path, config: HeliusConfig, plan: DataPlan) -> dict:
    """Prep the family the config's model trains on; returns index paths and segment counts."""
    family = "oneshots" if config.model.kind == "clip_vae" else "textures"
    settings = PrepSettings(
        sample_rate=config.data.sample_rate, segment_seconds=config.data.segment_seconds
    )
    result = prepare(audio / family, out, settings, val_fraction=plan.val_fraction, workers=1)
    return {
        "family": family,
        "train_index": str(out / "train_index.txt"),
        "val_index": str(out / "val_index.txt"),
        "train_segments": result.segments_train,
        "val_segments": result.segments_val,
    }


# --- training and scoring ------------------------------------------------------------------


def run_overrides(data: dict, run_dir: Path, minutes: float) -> list[str]:
    """Point the config at the prepared data and a scratch folder; the clock stops training."""
    return [
        f"data.train_index={data['train_index']}",
        f"data.val_index={data['val_index']}",
        "train.device=cpu",
        f"train.max_minutes={minutes}",
        "train.max_steps=null",  # the budget is time alone
        "train.epochs=null",
        f"train.checkpoint_dir={run_dir / 'checkpoints'}",
        f"train.log_dir={run_dir / 'runs'}",
    ]


def validate(task: VAETask, model: nn.Module, config: HeliusConfig) -> dict:
    """VAETask.validate on the whole validation index, seeded as the trainer seeds it."""
    dataset = task.eval_dataset(config.data.val_index)
    batches = iter(DataLoader(dataset, config.train.batch_size, shuffle=False))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(VALIDATION_SEED)
        return task.validate(model, batches).record()


def score(task: VAETask, model: nn.Module, config: HeliusConfig) -> dict[str, float]:
    """The validation metrics (VAETask takes a causal model's output lag out first)."""
    metrics = validate(task, model, config)
    return {name: float(metrics[name]) for name in METRICS}


def untrained_model(task: VAETask, config: HeliusConfig) -> nn.Module:
    """The model exactly as `fit` initialises it (same seed, same build)."""
    seed_everything(config.train.seed)
    return task.build_model()


def train_and_score(task: VAETask, config: HeliusConfig, wait_quiet: float) -> dict:
    """Train for the budget once the machine is quiet; the trained row with how it went."""
    busy_before = wait_for_quiet(wait_quiet)
    before = busy_cpu_seconds(), own_cpu_seconds(), time.perf_counter()
    fitted = fit(config, task)
    busy = other_cpu_cores(*before)
    return {
        "output": "trained",
        **score(task, fitted.model, config),
        "steps": fitted.step,
        "train_audio_seconds": fitted.audio_seconds,
        "train_seconds": fitted.elapsed_seconds,
        "audio_s_per_s": fitted.audio_seconds / max(fitted.elapsed_seconds, 1e-9),
        "other_cpu_cores": busy,
        "other_cpu_cores_before": busy_before,
    }


def benchmark_config(path: Path, args: argparse.Namespace, audio: Path, work: Path) -> list[dict]:
    """Prep, score both baselines, train for the budget, score again: three rows."""
    base = load_config(path)
    overrides = [*(TINY_OVERRIDES[base.model.kind] if args.tiny else []), *args.set]
    run_dir = work / path.stem
    data = prepare_data(audio, run_dir / "data", load_config(path, overrides), args.plan)
    config = load_config(path, [*overrides, *run_overrides(data, run_dir, args.minutes)])
    task = VAETask(config)
    untrained = untrained_model(task, config)
    rows = [
        {"output": "silence", **score(task, Silence(), config)},
        {"output": "untrained", **score(task, untrained, config)},
    ]
    trained = train_and_score(task, config, args.wait_quiet)
    for row in rows:
        row["mrstft_ratio"] = trained["mrstft"] / row["mrstft"]
        row["mel_ratio"] = trained["mel"] / row["mel"]
        row["si_sdr_gain_db"] = trained["si_sdr"] - row["si_sdr"]
    shared = {
        "config": path.name,
        "kind": config.model.kind,
        "params": sum(p.numel() for p in untrained.parameters()),
        **data,
    }
    return [{**shared, **row} for row in [*rows, trained]]


# --- the report ----------------------------------------------------------------------------


def cell(row: dict, key: str, spec: str) -> str:
    return format(row[key], spec) if key in row else "-"


def print_table(rows: list[dict], minutes: float) -> None:
    print(
        f"\nquality after {minutes:g} min of CPU training on {platform.node()} "
        f"({os.cpu_count()} cores, {torch.get_num_threads()} torch threads), validation set; "
        "'busy' is the mean number of cores other processes used while it trained"
    )
    headers = (
        ("config", 22),
        ("output", 9),
        ("val items", 9),
        ("steps", 6),
        ("MR-STFT", 7),
        ("trained/this", 12),
        ("mel", 6),
        ("trained/this", 12),
        ("SI-SDR dB", 9),
        ("trained-this dB", 15),
        ("busy", 4),
    )
    print("| " + " | ".join(f"{name:<{width}}" for name, width in headers) + " |")
    print("|" + "|".join("-" * (width + 2) for _, width in headers) + "|")
    for row in rows:
        cells = (
            f"{row['config']} ({row['kind']})",
            row["output"],
            str(row["val_segments"]),
            cell(row, "steps", "d"),
            cell(row, "mrstft", ".3f"),
            cell(row, "mrstft_ratio", ".3f"),
            cell(row, "mel", ".3f"),
            cell(row, "mel_ratio", ".3f"),
            cell(row, "si_sdr", ".2f"),
            cell(row, "si_sdr_gain_db", "+.2f"),
            "?" if row.get("other_cpu_cores", 0) is None else cell(row, "other_cpu_cores", ".1f"),
        )
        print(
            "| "
            + " | ".join(
                f"{text:<{width}}" if index < 2 else f"{text:>{width}}"
                for index, (text, (_, width)) in enumerate(zip(cells, headers, strict=True))
            )
            + " |"
        )
    print(
        "target: trained/this < 1 for MR-STFT and mel, trained-this > 0 dB for SI-SDR, "
        "against both baselines"
    )


def summarise(rows: list[dict]) -> dict:
    summary = {}
    for row in rows:
        if row["output"] == "trained":
            continue
        key = f"{row['config']}_vs_{row['output']}"
        beaten = row["mrstft_ratio"] < 1 and row["mel_ratio"] < 1 and row["si_sdr_gain_db"] > 0
        summary[key] = {
            "mrstft_ratio": row["mrstft_ratio"],
            "mel_ratio": row["mel_ratio"],
            "si_sdr_gain_db": row["si_sdr_gain_db"],
            "beaten_on_all_three": beaten,
        }
    return summary


def write_json(args: argparse.Namespace, rows: list[dict], summary: dict, real: list) -> Path:
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.date.today().isoformat()
    path = args.results_dir / f"quality-{stamp}-{platform.node()}.json"
    payload = {
        "machine": {
            "host": platform.node(),
            "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "load_average_at_start": args.load_average,
            "torch": torch.__version__,
        },
        "settings": {
            "minutes": args.minutes,
            "tiny": args.tiny,
            "set": args.set,
            "wait_quiet_seconds": args.wait_quiet,
            "data": asdict(args.plan),
        },
        "rows": rows,
        "summary": summary,
        "real_music": real,
    }
    path.write_text(json.dumps(payload, indent=2))
    return path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget per config")
    parser.add_argument("--configs", type=Path, nargs="+", default=list(DEFAULT_CONFIGS))
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="keep data, checkpoints and TensorBoard logs here (default: a temporary folder)",
    )
    parser.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="config override applied to every config (repeatable)",
    )
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads")
    parser.add_argument("--tiny", action="store_true", help="tiny models and data (tests)")
    parser.add_argument(
        "--data",
        choices=("builtin", "real", "all"),
        default="all",
        help="built-in synthetic sounds, real music (wave VAE configs), or both",
    )
    parser.add_argument(
        "--real-dir",
        type=Path,
        default=None,
        help="real music as DIR/train and DIR/unseen audio folders (default: bench/real_music.py)",
    )
    parser.add_argument(
        "--real-cache",
        type=Path,
        default=Path.home() / ".cache" / "helius-bench" / "real_music",
        help="where bench/real_music.py renders its pieces (kept between runs)",
    )
    parser.add_argument(
        "--real-seconds", type=float, default=60.0, help="seconds scored per unseen piece"
    )
    parser.add_argument("--progress", action="store_true", help="progress bars on stderr")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="before training, wait up to this long for other processes to go quiet (0: don't)",
    )
    args = parser.parse_args(argv)
    if args.minutes <= 0:
        parser.error("--minutes must be positive")
    args.plan = TINY_PLAN if args.tiny else DataPlan()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.load_average = os.getloadavg()  # other work on the machine skews every figure
    torch.set_num_threads(args.threads)
    progress.set_enabled(args.progress)
    rows, real = [], []
    with tempfile.TemporaryDirectory(prefix="helius-quality-") as scratch:
        work = args.work_dir or Path(scratch)
        if args.data in ("builtin", "all"):
            audio = generate_audio(work / "audio", args.plan)
            rows = [
                row for path in args.configs for row in benchmark_config(path, args, audio, work)
            ]
        if args.data in ("real", "all"):
            for path in args.configs:
                if load_config(path).model.kind != "wave_vae":
                    continue  # real music is continuous audio: the wave VAE's material
                args.overrides = [*(TINY_OVERRIDES["wave_vae"] if args.tiny else []), *args.set]
                real.append(quality_real.benchmark_real(path, args, work))
    if rows:
        print_table(rows, args.minutes)
    for record in real:
        quality_real.print_real(record, args.minutes)
    summary = summarise(rows)
    path = write_json(args, rows, summary, real)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
