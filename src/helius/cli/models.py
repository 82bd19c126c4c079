"""CLI for models: train, recon, eval."""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

from helius import registry
from helius.cli.common import add_config_options, add_vae_checkpoint, command, config_from
from helius.errors import ConfigError

SYSTEM = "every system"


def add_commands(commands) -> None:
    train = command(
        commands,
        "train",
        _run_train,
        "train the VAE of the config (wave_vae or clip_vae) on data.train_index",
    )
    add_config_options(train)
    train.add_argument(
        "--resume", action="store_true", help="continue exactly from checkpoint_dir/last.pt"
    )
    train.add_argument(
        "--device",
        default=None,
        help="override train.device (prior.train.device with --train_prior_only): auto, cpu, "
        "cuda, cuda:N, mps",
    )
    train.add_argument(
        "--train_prior_only",
        "--train-prior-only",
        action="store_true",
        help="train the latent prior on --vae_ckpt's latents instead (as helius train-prior)",
    )
    train.add_argument(
        "--vae_ckpt", "--vae-ckpt", type=Path, default=None, help="VAE for --train_prior_only"
    )
    train.add_argument("--quiet", action="store_true", help="no progress bar")

    recon = command(
        commands,
        "recon",
        _run_recon,
        "reconstruct an audio file through a trained VAE (encode, decode)",
    )
    add_vae_checkpoint(recon, required=True)
    recon.add_argument("--input", type=Path, required=True, help="audio file to reconstruct")
    recon.add_argument("--output", type=Path, required=True, help="WAV/FLAC file to write")
    recon.add_argument(
        "--sample_rate",
        type=int,
        default=None,
        help="rate of the output file (default: the input's; its channels are always kept)",
    )

    evaluate = command(
        commands,
        "eval",
        _run_eval,
        "measure a trained VAE on an index: MR-STFT, mel, SI-SDR, active dims",
    )
    add_vae_checkpoint(evaluate, required=True)
    evaluate.add_argument(
        "--index", type=Path, required=True, help="segment index, e.g. data/val_index.txt"
    )
    evaluate.add_argument("--json", action="store_true", help="print JSON")


def _run_train(args: argparse.Namespace) -> int:
    if args.device:  # the run's device: the VAE's train section, or the prior's
        section = "prior.train" if args.train_prior_only else "train"
        args.overrides = [*args.overrides, f"{section}.device={args.device}"]
    if args.train_prior_only:
        from helius.cli.core.generate import run_train_prior

        if args.vae_ckpt is None:
            raise ConfigError("--train_prior_only needs --vae_ckpt (a trained wave VAE)")
        return run_train_prior(args)
    from helius.train.trainer import fit

    config = config_from(args)
    result = fit(config, registry.get(config.model.kind).task(config), resume=args.resume)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under torchrun, rank 0 reports for everyone
    speed = result.audio_seconds / max(result.elapsed_seconds, 1e-9)
    print(
        f"trained {config.model.kind} to step {result.step} (epoch {result.epoch}) in "
        f"{result.elapsed_seconds:.1f} s, {speed:.1f} audio-s/s; checkpoints in "
        f"{result.checkpoint_dir}"
    )
    validation = {k: v for k, v in result.last_validation.items() if isinstance(v, float)}
    if validation:
        print("validation: " + ", ".join(f"{k} {v:.4g}" for k, v in sorted(validation.items())))
    if result.skipped_nonfinite:
        print(
            f"skipped {result.skipped_nonfinite} steps with non-finite loss or gradients; "
            f"{result.recoveries} recoveries (reloaded last good state, halved the LR)"
        )
    if result.stopped_early:
        print("stopped early: validation stopped improving (train.early_stopping_patience)")
    if result.out_of_time:
        print(f"stopped at the time budget (train.max_minutes={config.train.max_minutes:g})")
    if result.interrupted:
        print(f"interrupted: saved {result.last_path}; continue with --resume")
    return 0


def _run_recon(args: argparse.Namespace) -> int:
    from helius.generate.recon import reconstruct_file

    result = reconstruct_file(args.vae_ckpt, args.input, args.output, args.sample_rate)
    print(
        f"wrote {result.output} ({result.seconds:.2f} s): MR-STFT distance "
        f"{result.mrstft:.3f}, SI-SDR {result.si_sdr:.1f} dB"
    )
    return 0


def _run_eval(args: argparse.Namespace) -> int:
    import torch
    from torch.utils.data import DataLoader

    from helius.models.checkpoint import load_vae
    from helius.train.trainer import VALIDATION_SEED

    model, config = load_vae(args.vae_ckpt)
    # The same noise draws as validation during training, so the numbers agree with best.pt's.
    torch.manual_seed(VALIDATION_SEED)
    task = registry.get(config.model.kind).task(config, hop_samples=int(model.hop_samples))
    dataset = task.eval_dataset(args.index)
    metrics = task.validate(model, iter(DataLoader(dataset, config.train.batch_size))).record()
    metrics.pop("latent_health", None)
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        for name in (
            "mrstft",
            "mel",
            "si_sdr",
            "loudness_diff_db",
            "loudness_corr",
            "spectral_change_corr",
            "sensitivity_zero_db",
            "sensitivity_shuffle_db",
            "kl",
            "active_dims",
            "pca_dims_90",
            "pca_dims_99",
        ):
            value = metrics.get(name, math.nan)
            print(f"{name:>22}: {value:.4f}" if not math.isnan(value) else f"{name:>22}: nan")
        if metrics.get("ignores_latent"):
            print(
                "warning: the decoder ignores its latent (replacing z by zeros barely changes "
                "the output): reconstructions are an average sound, not the input"
            )
    return 0
