"""One function per mode of `helius harmonic` (see helius.cli.harmonic for the flags and
helius.harmonic.manual for how they become folders and a config); each prints what it did."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from helius import progress
from helius.errors import ConfigError, DataError
from helius.harmonic.inverters import inverter_for, load_mel_vae
from helius.harmonic.manual import folders, inside, prepare_data, training_config


def run(args: argparse.Namespace) -> int:
    return globals()[f"run_{args.mode}"](args)


def run_download(args: argparse.Namespace) -> int:
    from helius.harmonic.download import download

    if args.dataset not in ("maestro", "gtzan"):
        raise ConfigError("--mode download fetches --dataset maestro or gtzan (custom is yours)")
    target = folders(args)[args.dataset]
    root = download(args.dataset, target, progress=progress.enabled())
    print(f"{args.dataset} is ready in {root}")
    return 0


def run_preprocess(args: argparse.Namespace) -> int:
    prepared = prepare_data(args, args.output_dir)
    print(prepared.summary())
    return 0


def run_validate_data(args: argparse.Namespace) -> int:
    from helius.data.validate import format_table, validate_folder

    given = {name: folder for name, folder in folders(args).items() if folder is not None}
    if args.dataset != "combined":
        given = {args.dataset: given.get(args.dataset)}
    if None in given.values() or not given:
        raise ConfigError(f"--mode validate_data needs the {args.dataset} folder (--dataset_dir)")
    any_ok = False
    for name, folder in given.items():
        checks, ignored = validate_folder(folder, workers=args.workers)
        print(f"{name}: {folder}\n{format_table(checks, ignored)}")
        any_ok = any_ok or any(check.ok for check in checks)
    return 0 if any_ok else 1


def _prepared_for_training(args: argparse.Namespace):
    prepared = prepare_data(args, args.output_dir / "data")
    progress.note(prepared.summary())
    return prepared


def run_train(args: argparse.Namespace) -> int:
    from helius.harmonic.mel_task import MelVAETask
    from helius.train.trainer import fit

    config = training_config(args, _prepared_for_training(args))
    resume: bool | Path = False
    init_from = None
    if args.resume_from is not None:
        if not args.resume_from.is_file():
            raise DataError(f"--resume_from {args.resume_from} does not exist")
        if inside(args.resume_from, args.output_dir):
            resume = args.resume_from  # this run's own checkpoint: continue it exactly
        else:
            init_from = args.resume_from  # another run's: fine-tune its weights here
    result = fit(config, MelVAETask(config, init_from=init_from), resume=resume)
    best = Path(config.train.checkpoint_dir) / "harmonic_vae_best.pt"
    print(
        f"trained the mel VAE to epoch {result.epoch} (step {result.step}) in "
        f"{result.elapsed_seconds:.1f} s; best checkpoint {best}"
    )
    if result.interrupted:
        print(f"interrupted: continue with --resume_from {result.last_path}")
    return 0


def run_tune(args: argparse.Namespace) -> int:
    from helius.harmonic.tune import tune

    if args.trial_epochs:
        args.epochs = args.trial_epochs
    config = training_config(args, _prepared_for_training(args))
    result = tune(config, args.output_dir, args.trials, args.storage, args.study_name, args.seed)
    print(
        f"{result.trials_finished} trials finished, {result.trials_pruned} pruned; best "
        f"elbo_loss {result.best_value:.4f} with {json.dumps(result.best_params)}\n"
        f"ready config: {result.config_path} (train it with `helius train --config "
        f"{result.config_path}`); every trial: {result.table_path}"
    )
    return 0


def _checkpoint(args: argparse.Namespace) -> Path:
    path = args.checkpoint or args.output_dir / "harmonic_vae_best.pt"
    if not Path(path).is_file():
        raise DataError(f"mel VAE checkpoint {path} does not exist; train one (--mode train)")
    return Path(path)


def _write(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    from helius.audio.io import save

    path.parent.mkdir(parents=True, exist_ok=True)
    save(path, np.asarray(audio, dtype=np.float32), sample_rate)


def run_generate(args: argparse.Namespace) -> int:
    from helius.harmonic.sampling import generate

    model = load_mel_vae(_checkpoint(args))
    inverter = inverter_for(model, args.vocoder, args.griffin_lim_iterations)
    clips = generate(model, args.num_samples, inverter, args.seed, args.temperature)
    out = args.output_dir / "generated"
    for index, clip in enumerate(clips):
        _write(out / f"sample_{index:03d}.wav", clip, model.sample_rate)
    print(f"wrote {len(clips)} clips to {out}")
    return 0


def run_interpolate(args: argparse.Namespace) -> int:
    from helius.audio.io import load
    from helius.harmonic.sampling import interpolate

    if not args.inputs:
        raise ConfigError("--mode interpolate needs --inputs A B (two audio files)")
    model = load_mel_vae(_checkpoint(args))
    inverter = inverter_for(model, args.vocoder, args.griffin_lim_iterations)
    clips = [torch.as_tensor(load(path, model.sample_rate)[0][0]) for path in args.inputs]
    outputs = interpolate(model, clips[0], clips[1], args.steps, inverter, args.method)
    out = args.output_dir / "interpolated"
    for index, clip in enumerate(outputs):
        _write(out / f"{args.method}_{index:03d}.wav", clip, model.sample_rate)
    print(f"wrote {len(outputs)} clips from {args.inputs[0]} to {args.inputs[1]} in {out}")
    return 0


def run_visualize(args: argparse.Namespace) -> int:
    from helius.harmonic.visualize import visualize_checkpoint

    written = visualize_checkpoint(
        _checkpoint(args),
        args.output_dir / "visualizations",
        args.vocoder,
        args.griffin_lim_iterations,
        args.seed,
    )
    print(f"wrote visualizations to {written}")
    return 0
