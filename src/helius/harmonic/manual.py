"""The modes of `helius harmonic` (the training manual's interface) over the library: which
folders a data set means, the manual's flags as a mel VAE config, and one function per mode.

Folders: `--dataset_dir` is the chosen data set's folder (MAESTRO and GTZAN default to
data/maestro and data/gtzan, as download leaves them); `combined` takes --maestro_dir,
--gtzan_dir and --custom_dir. Training prepares a raw folder into output_dir/data first (prep
is incremental: unchanged files are not redone) or uses a prepared folder as it is.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from helius.config.base import apply_override, read_raw, validate
from helius.data.segment import PrepSettings
from helius.errors import ConfigError
from helius.harmonic.config import MelVAEConfig
from helius.harmonic.datasets import Prepared, prepare_dataset

EVERY_EPOCH_ONLY = 10**9  # val_every_steps: the manual validates at each epoch's end instead


def folders(args: argparse.Namespace) -> dict[str, Path | None]:
    """{"maestro", "gtzan", "custom"} -> the folder given for each (None where not given)."""
    found: dict[str, Path | None] = {
        "maestro": args.maestro_dir,
        "gtzan": args.gtzan_dir,
        "custom": args.custom_dir,
    }
    if args.dataset != "combined":
        if args.dataset_dir is not None:
            found[args.dataset] = args.dataset_dir
        elif found[args.dataset] is None and args.dataset in ("maestro", "gtzan"):
            found[args.dataset] = Path("data") / args.dataset
    return found


def prep_settings(args: argparse.Namespace) -> PrepSettings:
    """Segments one patch long, at the model's rate, mono."""
    return PrepSettings(sample_rate=args.sample_rate, segment_seconds=args.segment_length)


def prepare_data(args: argparse.Namespace, output_dir: Path) -> Prepared:
    return prepare_dataset(
        args.dataset,
        folders(args),
        output_dir,
        prep_settings(args),
        args.validation_split,
        args.workers,
        overwrite=args.overwrite,
    )


def _flag_values(args: argparse.Namespace, prepared: Prepared) -> dict[str, Any]:
    """The manual's flags as nested config values."""
    output = args.output_dir
    model: dict[str, Any] = {
        "kind": "mel_vae",
        "latent_dim": args.latent_dim,
        "segment_length": args.segment_length,
        "n_mels": args.n_mels,
        "n_fft": args.n_fft,
        "hop_length": args.hop_length,
    }
    # Giving the manual's --hidden_dims (flag or flat config) asks for its dense model.
    if args.hidden_dims is not None:
        model["hidden_dims"] = list(args.hidden_dims)
    architecture = args.architecture or ("mlp" if args.hidden_dims is not None else None)
    if architecture:
        model["architecture"] = architecture
    return {
        "data": {
            "train_index": str(prepared.train_index),
            "val_index": str(prepared.val_index),
            "sample_rate": args.sample_rate,
            "segment_seconds": args.segment_length,
            "val_fraction": args.validation_split,
        },
        "model": model,
        "train": {
            "epochs": args.epochs,
            "max_steps": None,
            "batch_size": args.batch_size,
            "learning_rate": args.learning_rate,
            "beta_start": args.beta_start,
            "beta_end": args.beta_end,
            "beta_steps": args.beta_steps,
            "augment": args.augment,
            "augment_strength": args.augment_strength,
            "checkpoint_every_epochs": args.checkpoint_every,
            "visualize_every_epochs": args.checkpoint_every,
            "visualization_dir": str(output / "visualizations"),
            "tensorboard": args.use_tensorboard,
            "amp": args.mixed_precision,
            "grad_accum_steps": args.grad_accum_steps,
            "device": args.device,
            "seed": args.seed,
            "checkpoint_dir": str(output),
            "log_dir": str(output / "logs"),
            "validate_every_epoch": True,
            "val_every_steps": EVERY_EPOCH_ONLY,
        },
    }


# Flags that set a config value: with a Helius config file only those given override it.
_FLAG_KEYS = {
    "latent_dim": ("model", "latent_dim"),
    "hidden_dims": ("model", "hidden_dims"),
    "architecture": ("model", "architecture"),
    "segment_length": ("model", "segment_length"),
    "n_mels": ("model", "n_mels"),
    "n_fft": ("model", "n_fft"),
    "hop_length": ("model", "hop_length"),
    "sample_rate": ("data", "sample_rate"),
    "validation_split": ("data", "val_fraction"),
    "epochs": ("train", "epochs"),
    "batch_size": ("train", "batch_size"),
    "learning_rate": ("train", "learning_rate"),
    "beta_start": ("train", "beta_start"),
    "beta_end": ("train", "beta_end"),
    "beta_steps": ("train", "beta_steps"),
    "augment": ("train", "augment"),
    "augment_strength": ("train", "augment_strength"),
    "checkpoint_every": ("train", "checkpoint_every_epochs"),
    "use_tensorboard": ("train", "tensorboard"),
    "mixed_precision": ("train", "amp"),
    "grad_accum_steps": ("train", "grad_accum_steps"),
    "device": ("train", "device"),
    "seed": ("train", "seed"),
}


def training_config(args: argparse.Namespace, prepared: Prepared) -> MelVAEConfig:
    """The run's config: the flags (and the manual's flat file), or a Helius config file with
    the flags given on the command line over it; then --set."""
    values = _flag_values(args, prepared)
    raw: dict[str, Any] = {}
    source = "flags"
    if args.config is not None:
        file_raw, source = read_raw(args.config, None)
        if any(key in file_raw for key in ("data", "model", "train")):
            raw = file_raw
            given = getattr(args, "given_flags", set())
            for section in ("data", "model", "train"):
                raw.setdefault(section, {})
            raw["model"].setdefault("kind", "mel_vae")
            # Where the run lives and what it reads always follow this command.
            for key in ("train_index", "val_index"):
                raw["data"][key] = values["data"][key]
            for key in ("checkpoint_dir", "log_dir", "visualization_dir"):
                raw["train"][key] = values["train"][key]
            raw["train"].setdefault("validate_every_epoch", True)
            for flag in given & set(_FLAG_KEYS):
                section, key = _FLAG_KEYS[flag]
                raw[section][key] = values[section][_FLAG_KEYS[flag][1]]
    if not raw:
        raw = values
    for override in args.overrides:
        apply_override(raw, override)
        source = f"{source} + --set"
    config = validate(MelVAEConfig, raw, source)
    if config.model.kind != "mel_vae":
        raise ConfigError(f"{args.config} is a {config.model.kind} config, not a mel_vae one")
    return config


def inside(path: Path, folder: Path) -> bool:
    return Path(os.path.abspath(path)).is_relative_to(Path(os.path.abspath(folder)))
