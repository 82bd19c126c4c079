"""Does the clip VAE follow real one-shots? Train a clip config on a one-shot set for a step
budget and score every unseen clip decoded from z alone, next to baselines that follow nothing.

Issue #12 item 6: on recorded drums the clip VAE scored worse than static noise with each
clip's own average spectrum. Here each unseen clip (`--oneshots DIR/unseen`; default: the set
of bench/oneshots.py, GM percussion via FluidSynth plus built-in drums) is scored with
`fidelity_eval.score_pair` (MR-STFT, DAC mel, SI-SDR, loudness-envelope and spectral-change
correlation, loudness difference), and the scores are averaged. Rows:
- silence;
- static_noise: noise with the clip's own average spectrum and level (knows the clip, follows
  nothing);
- mean_clip: the average waveform of the training clips, the same for every clip (the best a
  model that ignores its latent can learn, to first order);
- untrained: the model as initialised;
- trained: after --steps optimizer steps, in eval mode, i.e. `decode(encode(x)[0])` with skips
  generated from z.
Model rows also get the decoder's latent sensitivity (output change when z is zeroed or taken
from another clip). One run writes bench/results/clip_quality-<date>-<host>[-<tag>].json.

    python bench/clip_quality.py --work-dir /tmp/cq --steps 1500 [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import fidelity_eval  # the sibling scripts (bench/ is on sys.path)
import numpy as np
import oneshots
import torch
from quality_real import METRICS, audio_files
from train_speed import TINY_OVERRIDES

from helius import fidelity, progress
from helius.audio import io as audio_io
from helius.config import HeliusConfig, load_config
from helius.data.prep import prepare
from helius.data.segment import PrepSettings
from helius.files import atomic_write_text
from helius.train.runtime import seed_everything
from helius.train.trainer import fit
from helius.train.vae_task import VAETask

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent


def load_clips(files: list[Path], sample_rate: int, samples: int) -> torch.Tensor:
    """(N, 1, samples) mono clips at `sample_rate`, cut or zero-padded to the clip length."""
    clips = []
    for path in files:
        audio, _ = audio_io.load(path, sample_rate, mono=True)
        audio = audio[0, :samples]
        clips.append(np.pad(audio, (0, samples - len(audio))))
    return torch.from_numpy(np.stack(clips)).float().unsqueeze(1)


def source_of(path: Path) -> str:
    """ "gm" / "synth" for bench/oneshots.py's names, else "other"."""
    prefix = path.name.split("__", 1)[0]
    return prefix if prefix in ("gm", "synth") else "other"


@torch.no_grad()
def model_outputs(model: torch.nn.Module, clips: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """Eval-mode output from z = mu alone for every clip, and the latent sensitivity."""
    model.eval()
    mu = torch.cat([model.encode(batch)[0] for batch in clips.split(8)])
    audio = torch.cat([model.decode(z) for z in mu.split(8)])
    return audio, fidelity.latent_sensitivity_db(model.decode, mu)


def score_rows(
    predictions: dict[str, torch.Tensor], clips: torch.Tensor, files: list[Path], rate: int
) -> tuple[dict, dict]:
    """(row -> mean scores over all clips, source -> row -> mean scores over its clips)."""
    mrstft = fidelity_eval._mrstft()
    per_clip = {
        row: [fidelity_eval.score_pair(pred[i], clips[i], rate, mrstft) for i in range(len(files))]
        for row, pred in predictions.items()
    }

    def mean(row: str, keep: list[int]) -> dict[str, float]:
        scores = [per_clip[row][i] for i in keep]
        return {key: float(np.mean([s[key] for s in scores])) for key in scores[0]}

    everything = list(range(len(files)))
    rows = {row: mean(row, everything) for row in predictions}
    by_source = {}
    for source in sorted({source_of(p) for p in files}):
        keep = [i for i, p in enumerate(files) if source_of(p) == source]
        by_source[source] = {row: mean(row, keep) for row in predictions}
    return rows, by_source


def prepared_data(train_dir: Path, work: Path, config: HeliusConfig) -> tuple[Path, int]:
    """Prepared clips of the training folder, as `helius prep --config` would make them
    (incremental: reused when unchanged)."""
    data = work / "data"
    settings = PrepSettings(
        sample_rate=config.data.sample_rate,
        segment_seconds=config.data.segment_seconds,
        silence_threshold_db=config.data.silence_threshold_db,
        one_shot=config.data.one_shot,  # the preset's way: one clip per file, from its onset
    )
    result = prepare(train_dir, data, settings, val_fraction=config.data.val_fraction, workers=1)
    return data, result.segments_train


def train_config(args: argparse.Namespace, data: Path) -> HeliusConfig:
    run_dir = args.work_dir / "run"
    return load_config(
        args.config,
        [
            *args.overrides,
            f"data.train_index={data / 'train_index.txt'}",
            f"data.val_index={data / 'val_index.txt'}",
            "train.device=cpu",
            f"train.max_steps={args.steps}",
            "train.max_minutes=null",
            "train.epochs=1000000",
            f"train.checkpoint_dir={run_dir / 'checkpoints'}",
            f"train.log_dir={run_dir / 'runs'}",
        ],
    )


def oneshot_folders(args: argparse.Namespace) -> tuple[Path, Path, dict]:
    """(train folder, unseen folder, description of the set)."""
    root = args.oneshots
    if root is None:
        root = args.cache
        record = oneshots.build_set(root)
        description = {
            "source": "bench/oneshots.py: FluidR3 GM bank-128 kits via FluidSynth + built-in drums",
            "counts": record["counts"],
            "skipped_gm_hits": record["skipped"],
            "kits": len(record["kits"]),
        }
    else:
        description = {"source": str(root)}
    train, unseen = root / "train", root / "unseen"
    for folder in (train, unseen):
        if not folder.is_dir():
            raise SystemExit(f"--oneshots {root} needs train/ and unseen/ subfolders")
    return train, unseen, description


def run(args: argparse.Namespace) -> dict:
    train_dir, unseen_dir, description = oneshot_folders(args)
    base = load_config(args.config, args.overrides)
    data, train_segments = prepared_data(train_dir, args.work_dir, base)
    config = train_config(args, data)
    task = VAETask(config)
    seed_everything(config.train.seed)
    untrained = task.build_model().eval()  # fit() seeds alike: the trained model's start
    rate, samples = untrained.sample_rate, untrained.clip_samples

    train_files, unseen_files = audio_files(train_dir), audio_files(unseen_dir)
    clips = load_clips(unseen_files, rate, samples)
    mean_clip = load_clips(train_files, rate, samples).mean(dim=0)
    predictions = {
        "silence": torch.zeros_like(clips),
        "static_noise": fidelity.static_spectrum_baseline(clips),
        "mean_clip": mean_clip.expand_as(clips),
    }
    sensitivity = {}
    predictions["untrained"], sensitivity["untrained"] = model_outputs(untrained, clips)
    start = time.perf_counter()
    fitted = fit(config, task)
    wall = time.perf_counter() - start
    predictions["trained"], sensitivity["trained"] = model_outputs(fitted.model, clips)
    rows, by_source = score_rows(predictions, clips, unseen_files, rate)
    for row, values in sensitivity.items():
        rows[row].update(values)
    return {
        "config": str(args.config),
        "overrides": args.overrides,
        "tag": args.tag,
        "data": {
            **description,
            "train_clips": len(train_files),
            "train_segments": train_segments,
            "unseen_clips": [p.name for p in unseen_files],
            "sample_rate": rate,
            "clip_samples": samples,
        },
        "steps": fitted.step,
        "train_audio_seconds": fitted.audio_seconds,
        "wall_seconds": wall,
        "seconds_per_step": wall / max(fitted.step, 1),
        "final_train_loss": fitted.losses[-1] if fitted.losses else None,
        "rows": rows,
        "rows_by_source": by_source,
    }


def print_table(record: dict) -> None:
    data = record["data"]
    print(
        f"\n{Path(record['config']).name} {record['tag'] or ''}: {record['steps']} steps "
        f"({record['seconds_per_step']:.2f} s/step, {record['threads']} thread(s)), "
        f"{data['train_clips']} training clips, scored on {len(data['unseen_clips'])} unseen"
    )
    print("| output | " + " | ".join(METRICS) + " |")
    print("|---|" + "---|" * len(METRICS))
    for name, values in record["rows"].items():
        cells = [f"{values[m]:.3f}" if m in values else "-" for m in METRICS]
        print(f"| {name} | " + " | ".join(cells) + " |")
    follow = ("mrstft", "mel", "loudness_corr", "spectral_change_corr", "loudness_diff_db")
    for source, rows in record["rows_by_source"].items():
        cells = ", ".join(
            f"{row} " + "/".join(f"{rows[row][m]:.2f}" for m in follow)
            for row in ("static_noise", "mean_clip", "trained")
        )
        print(f"{source} ({'/'.join(follow)}): {cells}")


def write_json(args: argparse.Namespace, record: dict) -> Path:
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.date.today().isoformat()
    tag = f"-{args.tag}" if args.tag else ""
    path = args.results_dir / f"clip_quality-{stamp}-{platform.node()}{tag}.json"
    payload = {"date": stamp, "machine": platform.node(), **record}
    atomic_write_text(path, json.dumps(payload, indent=2))
    return path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--oneshots", type=Path, help="DIR/train and DIR/unseen audio folders")
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path.home() / ".cache" / "helius-bench" / "oneshots",
        help="where bench/oneshots.py builds its set (without --oneshots)",
    )
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "clip.yaml")
    parser.add_argument("--steps", type=int, default=1500, help="optimizer steps")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--work-dir", type=Path, required=True)
    parser.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")
    parser.add_argument("--tag", default="", help="names the run in the JSON file name")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--tiny", action="store_true", help="tiny model sizes (tests)")
    args = parser.parse_args(argv)
    if args.steps <= 0:
        parser.error("--steps must be positive")
    args.overrides = [*(TINY_OVERRIDES["clip_vae"] if args.tiny else []), *args.set]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    progress.set_enabled(False)
    record = run(args)
    record.update(threads=torch.get_num_threads(), load_average=os.getloadavg())
    print_table(record)
    print(f"wrote {write_json(args, record)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
