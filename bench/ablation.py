"""Which setting makes the wave VAE learn real music? Each suspect of issue #12 switched on or
off against the default config, at the same step budget, scored on unseen real music.

Every variant trains from the same seed on the same prepared data for --steps optimizer steps
(a step budget, not minutes, so two variants may run side by side and still compare), then
`fidelity_eval.evaluate` scores whole unseen pieces next to the silence / static-noise /
4 kHz low-pass rows. Each run writes bench/results/ablation-<date>-<host>-<variants>.json;
`--summarise FILE...` prints one table of several runs.

    python bench/ablation.py --real-dir DIR --steps 800 --variants default noise_off
    python bench/ablation.py --summarise bench/results/ablation-*.json
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import fidelity_eval  # the sibling scripts (bench/ is on sys.path)
import quality_real
import real_music
import soundfile as sf
import torch
from train_speed import TINY_OVERRIDES

from helius import progress
from helius.config import load_config
from helius.data.prep import prepare
from helius.data.segment import PrepSettings
from helius.files import atomic_write_text
from helius.models import wave_vae
from helius.train.runtime import seed_everything
from helius.train.trainer import fit
from helius.train.vae_task import VAETask

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent

PQMF = "model.wave.transform=pqmf"
# name -> (what it tests, overrides on top of the config). "pytorch_init" also skips
# `wave_vae.initialise` (see `_variant_patch`).
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "default": ("configs/config.yaml as shipped", []),
    "stft_latent_64": ("spectral design, 64 latent channels", ["model.latent_dim=64"]),
    "integrated_phase": (
        "decoder writes phase increments (instantaneous frequency), summed over frames",
        ["model.wave.stft.phase=integrated"],
    ),
    "absolute_phase": ("decoder writes each frame's phase", ["model.wave.stft.phase=absolute"]),
    "beta_0.01": ("KL beta 0.01 (a tenth)", ["train.kl.beta=0.01"]),
    "beta_0.001": ("KL beta 0.001 (a hundredth)", ["train.kl.beta=0.001"]),
    "beta_0.001_eps_1e-4": (
        "KL beta 0.001 and log floor 1e-4",
        ["train.kl.beta=0.001", "train.loss.log_epsilon=1e-4"],
    ),
    "beta_0.001_eps_1e-4_latent_64": (
        "KL beta 0.001, log floor 1e-4, 64 latent channels",
        ["train.kl.beta=0.001", "train.loss.log_epsilon=1e-4", "model.latent_dim=64"],
    ),
    "pqmf": ("the PQMF design (the default before #12's fix)", [PQMF]),
    "noise_off": ("PQMF, no filtered-noise branch", [PQMF, "model.wave.noise_branch=false"]),
    "am_off": ("PQMF, no amplitude modulation", [PQMF, "model.wave.amplitude_modulation=false"]),
    "noise_am_off": (
        "PQMF, neither (the issue's quick check)",
        [PQMF, "model.wave.noise_branch=false", "model.wave.amplitude_modulation=false"],
    ),
    "log_eps_1e-7": ("log floor 1e-7 (before #12)", ["train.loss.log_epsilon=1e-7"]),
    "log_eps_1e-4": ("log floor 1e-4", ["train.loss.log_epsilon=1e-4"]),
    "log_eps_1e-1": ("log floor 1e-1", ["train.loss.log_epsilon=0.1"]),
    "pytorch_init": ("PQMF, PyTorch's default init (before #12)", [PQMF]),
    "lr_1e-4": ("learning rate 1e-4 (RAVE's GPU rate)", ["train.learning_rate=1e-4"]),
    "no_warmup": ("no LR warm-up", ["train.warmup_steps=0"]),
    "free_bits_0": ("no free bits", ["train.kl.free_bits=0"]),
    "beta_1_fast": (
        "KL beta 1 reached in 500 steps",
        ["train.kl.beta=1.0", "train.kl.warmup_steps=500"],
    ),
    "latent_64": ("64 latent channels", ["model.latent_dim=64"]),
    "capacity_64": ("PQMF, capacity 64 (~4x compute)", [PQMF, "model.wave.capacity=64"]),
    "hop_512": ("PQMF, one latent frame per 512 samples", [PQMF, "model.wave.ratios=[4,2,2,2]"]),
    "rave_v2_small_shape": (
        "RAVE v2_small's shape: hop 512, capacity 48, 128 latents, beta 0.01",
        [
            PQMF,
            "model.wave.ratios=[4,2,2,2]",
            "model.wave.capacity=48",
            "model.latent_dim=128",
            "train.kl.beta=0.01",
        ],
    ),
    "mel_1": ("plus the DAC mel distance, weight 1", ["train.loss.mel_weight=1.0"]),
    "loudness_1": (
        "plus the per-frame loudness L1 (dB / 10), weight 1",
        ["train.loss.loudness_weight=1.0"],
    ),
    "loudness_1_mel_1": (
        "plus the loudness L1 and the DAC mel distance, weight 1 each",
        ["train.loss.loudness_weight=1.0", "train.loss.mel_weight=1.0"],
    ),
    "phase_0.1": ("plus the STFT real/imag L1, weight 0.1", ["train.loss.phase_weight=0.1"]),
}
METRICS = quality_real.METRICS


@contextlib.contextmanager
def _variant_patch(name: str) -> Iterator[None]:
    """For "pytorch_init", build models with PyTorch's default initialisation."""
    if name != "pytorch_init":
        yield
        return
    original = wave_vae.initialise
    wave_vae.initialise = lambda model: None
    try:
        yield
    finally:
        wave_vae.initialise = original


def prepare_data(config_path: Path, overrides: list[str], train_dir: Path, work: Path) -> Path:
    """Prepared segments of the training pieces, reused when the work folder has them."""
    data = work / "data"
    if not (data / "train_index.txt").is_file():
        base = load_config(config_path, overrides)
        settings = PrepSettings(
            sample_rate=base.data.sample_rate, segment_seconds=base.data.segment_seconds
        )
        prepare(train_dir, data, settings, val_fraction=0.02, workers=1)
    return data


def run_variant(name: str, args: argparse.Namespace, data: Path, unseen: list[Path]) -> dict:
    what, variant_overrides = VARIANTS[name]
    run_dir = args.work_dir / name
    config = load_config(
        args.config,
        [
            *args.overrides,
            *variant_overrides,
            f"data.train_index={data / 'train_index.txt'}",
            f"data.val_index={data / 'val_index.txt'}",
            "train.device=cpu",
            *(
                [f"train.max_minutes={args.minutes}", "train.max_steps=null"]
                if args.minutes
                else [f"train.max_steps={args.steps}", "train.max_minutes=null"]
            ),
            "train.epochs=null",
            f"train.checkpoint_dir={run_dir / 'checkpoints'}",
            f"train.log_dir={run_dir / 'runs'}",
        ],
    )
    with _variant_patch(name):
        seed_everything(config.train.seed)
        task = VAETask(config)
        start = time.perf_counter()
        fitted = fit(config, task)
        seconds = time.perf_counter() - start
    scores = fidelity_eval.evaluate(unseen, args.real_seconds, {name: fitted.model.eval()})
    return {
        "variant": name,
        "what": what,
        "overrides": variant_overrides,
        "steps": fitted.step,
        "train_audio_seconds": fitted.audio_seconds,
        "wall_seconds": seconds,
        "scores": scores[name],
        "baselines": {row: scores[row] for row in fidelity_eval.BASELINE_ROWS},
    }


def print_table(records: list[dict]) -> None:
    print("| variant | steps | " + " | ".join(METRICS) + " |")
    print("|---|---|" + "---|" * len(METRICS))
    for record in records:
        cells = [f"{record['scores'][m]:.3f}" for m in METRICS]
        print(f"| {record['variant']} | {record['steps']} | " + " | ".join(cells) + " |")
    for row, values in records[0]["baselines"].items() if records else ():
        cells = [f"{values[m]:.3f}" if m in values else "-" for m in METRICS]
        print(f"| ({row}) | - | " + " | ".join(cells) + " |")


def write_json(args: argparse.Namespace, records: list[dict]) -> Path:
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.date.today().isoformat()
    names = "+".join(args.variants)
    budget = f"{args.minutes:g}min" if args.minutes else f"{args.steps}steps"
    path = args.results_dir / f"ablation-{stamp}-{platform.node()}-{budget}-{names}.json"
    payload = {
        "date": stamp,
        "machine": platform.node(),
        "threads": torch.get_num_threads(),
        "load_average": os.getloadavg(),
        "config": str(args.config),
        "overrides": args.overrides,
        "steps_budget": None if args.minutes else args.steps,
        "minutes_budget": args.minutes,
        "real_seconds": args.real_seconds,
        "data": args.data_description,
        "records": records,
    }
    atomic_write_text(path, json.dumps(payload, indent=2))
    return path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "config.yaml")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--steps", type=int, default=800, help="optimizer steps per variant")
    parser.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="a wall-clock budget per variant instead of --steps (only fair for runs that have "
        "the machine to themselves or share it alike)",
    )
    parser.add_argument("--real-dir", type=Path, help="DIR/train and DIR/unseen audio folders")
    parser.add_argument(
        "--real-cache",
        type=Path,
        default=Path.home() / ".cache" / "helius-bench" / "real_music",
        help="where bench/real_music.py renders its pieces (without --real-dir)",
    )
    parser.add_argument("--real-seconds", type=float, default=60.0)
    parser.add_argument("--work-dir", type=Path, required=False)
    parser.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--tiny", action="store_true", help="tiny models (tests)")
    parser.add_argument("--summarise", type=Path, nargs="+", metavar="JSON")
    args = parser.parse_args(argv)
    if args.summarise is None and args.work_dir is None:
        parser.error("--work-dir is required (prepared data and checkpoints go there)")
    if args.steps <= 0:
        parser.error("--steps must be positive")
    args.overrides = [*(TINY_OVERRIDES["wave_vae"] if args.tiny else []), *args.set]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.summarise:
        records = [r for path in args.summarise for r in json.loads(path.read_text())["records"]]
        print_table(records)
        return 0
    torch.set_num_threads(args.threads)
    progress.set_enabled(False)
    if args.real_dir is not None:
        train_dir, unseen_dir = args.real_dir / "train", args.real_dir / "unseen"
    else:
        pieces = real_music.build_set(args.real_cache)
        train_dir, unseen_dir = args.work_dir / "real_train", args.work_dir / "real_unseen"
        real_music.link_split(pieces, train_dir, unseen_dir)
    data = prepare_data(args.config, args.overrides, train_dir, args.work_dir)
    unseen = quality_real.audio_files(unseen_dir)
    train_files = quality_real.audio_files(train_dir)
    args.data_description = {
        "train_files": len(train_files),
        "train_minutes": sum(sf.info(path).duration for path in train_files) / 60,
        "unseen_files": [path.name for path in unseen],
    }
    records = []
    for name in args.variants:
        records.append(run_variant(name, args, data, unseen))
        print(f"{name}: " + ", ".join(f"{m} {records[-1]['scores'][m]:.3f}" for m in METRICS))
        path = write_json(args, records)  # after each variant: a stopped run keeps its results
    print_table(records)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
