"""The real-music half of bench/quality.py: train a config on real music for a CPU budget and
score whole unseen pieces next to baselines a static output cannot beat.

Data: `real_music.build_set` (music21 scores rendered by FluidSynth + the Wesnoth soundtrack,
split by piece), or any folder with `train/` and `unseen/` subfolders of audio files
(`--real-dir`, used by the tests with generated audio). Rows, scored by
`fidelity_eval.evaluate` on the first `--real-seconds` of every unseen piece: silence, static
noise with each file's average spectrum, the input low-passed at 4 kHz (a reference, not a
model), the untrained model and the trained one.
"""

from __future__ import annotations

import time
from pathlib import Path

import fidelity_eval  # the sibling script (bench/ is on sys.path)
import real_music
from train_speed import busy_cpu_seconds, other_cpu_cores, own_cpu_seconds, wait_for_quiet

from helius.config import load_config
from helius.data.prep import prepare
from helius.data.segment import PrepSettings
from helius.train.runtime import seed_everything
from helius.train.trainer import fit
from helius.train.vae_task import VAETask

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
METRICS = (
    "mrstft",
    "mel",
    "si_sdr",
    "loudness_corr",
    "spectral_change_corr",
    "loudness_diff_db",
    "sensitivity_zero_db",
    "sensitivity_shuffle_db",
)
TARGETS = {  # issue #12, on unseen pieces after 30 CPU minutes
    "loudness_corr": (">=", 0.95),
    "spectral_change_corr": (">=", 0.6),
    "loudness_diff_db": ("|x|<=", 1.0),
    "mrstft": ("<=", 1.10),
    "mel": ("<=", 0.75),
}


def real_folders(work: Path, real_dir: Path | None, cache: Path) -> tuple[Path, Path, dict]:
    """(train folder, unseen folder, description) of the real-music set."""
    if real_dir is not None:
        train, unseen = real_dir / "train", real_dir / "unseen"
        for folder in (train, unseen):
            if not folder.is_dir():
                raise SystemExit(f"--real-dir {real_dir} needs train/ and unseen/ subfolders")
        return train, unseen, {"source": str(real_dir)}
    pieces = real_music.build_set(cache)
    train, unseen = work / "real_train", work / "real_unseen"
    real_music.link_split(pieces, train, unseen)
    return (
        train,
        unseen,
        {
            "source": "music21 scores (no Bach) via FluidSynth/FluidR3 GM; wesnoth-1.16-music",
            "train_pieces": sum(not p.unseen for p in pieces),
            "train_minutes": sum(p.seconds for p in pieces if not p.unseen) / 60,
            "unseen_pieces": [p.name for p in pieces if p.unseen],
        },
    )


def audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)


def benchmark_real(config_path: Path, args, work: Path) -> dict:
    """Prep the training pieces, train for the budget, score the unseen pieces; one record."""
    train_dir, unseen_dir, description = real_folders(work, args.real_dir, args.real_cache)
    base = load_config(config_path, args.overrides)
    data_dir = work / f"real_{config_path.stem}" / "data"
    settings = PrepSettings(
        sample_rate=base.data.sample_rate, segment_seconds=base.data.segment_seconds
    )
    prep = prepare(train_dir, data_dir, settings, val_fraction=0.02, workers=1)
    run_dir = work / f"real_{config_path.stem}"
    config = load_config(
        config_path,
        [
            *args.overrides,
            f"data.train_index={data_dir / 'train_index.txt'}",
            f"data.val_index={data_dir / 'val_index.txt'}",
            "train.device=cpu",
            f"train.max_minutes={args.minutes}",
            "train.max_steps=null",  # the budget is time alone
            "train.epochs=null",
            f"train.checkpoint_dir={run_dir / 'checkpoints'}",
            f"train.log_dir={run_dir / 'runs'}",
        ],
    )
    task = VAETask(config)
    seed_everything(config.train.seed)
    untrained = task.build_model().eval()
    busy_before = wait_for_quiet(args.wait_quiet)
    before = busy_cpu_seconds(), own_cpu_seconds(), time.perf_counter()
    fitted = fit(config, task)
    busy = other_cpu_cores(*before)
    unseen = audio_files(unseen_dir)
    scores = fidelity_eval.evaluate(
        unseen,
        args.real_seconds,
        {"untrained": untrained, "trained": fitted.model.eval()},
    )
    return {
        "config": config_path.name,
        "data": {
            **description,
            "train_segments": prep.segments_train,
            "unseen_files": [p.name for p in unseen],
            "seconds_per_unseen_file": args.real_seconds,
        },
        "steps": fitted.step,
        "train_audio_seconds": fitted.audio_seconds,
        "train_seconds": fitted.elapsed_seconds,
        "other_cpu_cores": busy,
        "other_cpu_cores_before": busy_before,
        "rows": scores,
        "targets_met": targets_met(scores["trained"]),
    }


def targets_met(trained: dict[str, float]) -> dict[str, bool]:
    met = {}
    for key, (rule, value) in TARGETS.items():
        x = trained[key]
        met[key] = (
            x >= value if rule == ">=" else abs(x) <= value if rule == "|x|<=" else x <= value
        )
    return met


def print_real(record: dict, minutes: float) -> None:
    data = record["data"]
    print(
        f"\nreal music: {record['config']} trained {minutes:g} min on CPU "
        f"({record['steps']} steps, {record['train_audio_seconds'] / 60:.0f} audio-min seen), "
        f"scored on {len(data['unseen_files'])} unseen files "
        f"(first {data['seconds_per_unseen_file']:g} s each, at their own sample rate)"
    )
    headers = ("output", *METRICS)
    print("| " + " | ".join(f"{h[:14]:>14}" for h in headers) + " |")
    print("|" + "|".join("-" * 16 for _ in headers) + "|")
    for name, values in record["rows"].items():
        cells = [f"{values[m]:>14.3f}" if m in values else f"{'-':>14}" for m in METRICS]
        print(f"| {name:>14} | " + " | ".join(cells) + " |")
    met = ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in record["targets_met"].items())
    print(f"targets (issue #12, 30 min): {met}")
