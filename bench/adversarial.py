"""Does adversarial fine-tuning help at CPU scale? Phase 1 alone against phase 1 + phase 2 for
the same wall clock, scored on unseen real music.

From one phase-1 checkpoint (trained here for --phase1-minutes, or given as --from-checkpoint,
e.g. an epoch checkpoint of `bench/quality.py --data real`), two exact continuations run for
--phase2-minutes each: "phase 1" keeps training as before, "phase 1 + 2" switches on
`train.adversarial` at the checkpoint's step. Both are scored by `fidelity_eval.evaluate` on
the unseen pieces. Prints a table and writes bench/results/adversarial-<date>-<host>.json.

    python bench/adversarial.py --real-dir DIR --phase1-minutes 20 --phase2-minutes 10
    python bench/adversarial.py --real-dir DIR --from-checkpoint vae_epoch3.pt --phase2-minutes 8
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import sys
from pathlib import Path

import fidelity_eval  # the sibling scripts (bench/ is on sys.path)
import quality_real
import torch
from train_speed import TINY_OVERRIDES

from helius import progress
from helius.config import load_config
from helius.data.prep import prepare
from helius.data.segment import PrepSettings
from helius.models.checkpoint import load_checkpoint
from helius.train.trainer import fit
from helius.train.vae_task import VAETask

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent


def _fit(config_path: Path, overrides: list[str], run_dir: Path, minutes: float, resume: bool):
    config = load_config(
        config_path,
        [
            *overrides,
            "train.device=cpu",
            f"train.max_minutes={minutes}",
            "train.max_steps=null",  # the budget is time alone
            "train.epochs=null",
            f"train.checkpoint_dir={run_dir / 'checkpoints'}",
            f"train.log_dir={run_dir / 'runs'}",
        ],
    )
    return fit(config, VAETask(config), resume=resume)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "config.yaml")
    parser.add_argument("--real-dir", type=Path, required=True, help="DIR/train and DIR/unseen")
    parser.add_argument("--from-checkpoint", type=Path, help="phase-1 checkpoint to continue")
    parser.add_argument("--phase1-minutes", type=float, default=20.0)
    parser.add_argument("--phase2-minutes", type=float, default=10.0)
    parser.add_argument("--only", choices=("both", "adversarial"), default="both")
    parser.add_argument("--real-seconds", type=float, default=60.0)
    parser.add_argument("--work-dir", type=Path, required=True)
    parser.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--tiny", action="store_true")
    args = parser.parse_args(argv)
    progress.set_enabled(False)
    overrides = [*(TINY_OVERRIDES["wave_vae"] if args.tiny else []), *args.set]
    base = load_config(args.config, overrides)
    data = args.work_dir / "data"
    settings = PrepSettings(
        sample_rate=base.data.sample_rate, segment_seconds=base.data.segment_seconds
    )
    prepare(args.real_dir / "train", data, settings, val_fraction=0.02, workers=1)
    overrides += [
        f"data.train_index={data / 'train_index.txt'}",
        f"data.val_index={data / 'val_index.txt'}",
    ]
    start = args.from_checkpoint
    if start is None:
        _fit(args.config, overrides, args.work_dir / "start", args.phase1_minutes, False)
        start = args.work_dir / "start" / "checkpoints" / "last.pt"
    switch_step = int(load_checkpoint(start)["step"])
    runs = {"phase 1": [], "phase 1 + 2": [f"train.adversarial.start_step={switch_step}"]}
    if args.only == "adversarial":
        runs.pop("phase 1")
    models, steps = {}, {}
    for name, extra in runs.items():
        run_dir = args.work_dir / name.replace(" ", "").replace("+", "_")
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        shutil.copy(start, run_dir / "checkpoints" / "last.pt")
        fitted = _fit(args.config, [*overrides, *extra], run_dir, args.phase2_minutes, True)
        models[name], steps[name] = fitted.model.eval(), fitted.step
    unseen = quality_real.audio_files(args.real_dir / "unseen")
    rows = fidelity_eval.evaluate(unseen, args.real_seconds, models)
    print(f"\nfrom step {switch_step}, {args.phase2_minutes:g} more CPU minutes each; unseen:")
    fidelity_eval.print_table(rows)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.date.today().isoformat()
    path = args.results_dir / f"adversarial-{stamp}-{platform.node()}.json"
    payload = {
        "machine": {"host": platform.node(), "cores": os.cpu_count(), "torch": torch.__version__},
        "settings": {**{k: str(v) for k, v in vars(args).items()}},
        "switch_step": switch_step,
        "steps": steps,
        "rows": rows,
    }
    path.write_text(json.dumps(payload, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
