"""Helpers shared by the CLI modules: subcommand registration, --vae_ckpt and --config/--set."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from helius.config import DEFAULT_CONFIG_PATH, HeliusConfig, load_config

# Commands that run a model a block or a frame at a time: many tiny ops, where one thread is
# fastest and more wait on each other at every op (OpenMP barriers), 20-50x slower as soon as
# anything else runs on the machine. As nn~ does, they default to one thread.
ONE_THREAD_COMMANDS = frozenset({"stream", "live", "dream", "explore", "recon", "export"})
# Commands with no model to run take no --threads.
NO_MODEL_COMMANDS = frozenset({"prep", "validate-data", "demo-data", "show", "report"})


def command(commands, name: str, run: Callable, help_text: str) -> argparse.ArgumentParser:
    sub = commands.add_parser(
        name,
        help=help_text,
        description=help_text,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sub.set_defaults(run=run)
    if name not in NO_MODEL_COMMANDS:
        add_threads(sub, 1 if name in ONE_THREAD_COMMANDS else None)
    return sub


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_threads(parser: argparse.ArgumentParser, default: int | None) -> None:
    cores = "PyTorch's default: one per physical core"
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=default,
        help=f"torch CPU threads (None: {cores})",
    )


def apply_threads(args: argparse.Namespace) -> int | None:
    """Set torch's CPU threads from --threads (if the command has it); returns the count."""
    threads = getattr(args, "threads", None)
    if threads is None:
        return None
    import torch

    torch.set_num_threads(threads)
    return threads


def add_vae_checkpoint(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument(
        "--vae_ckpt", "--vae-ckpt", type=Path, required=required, help="VAE checkpoint (.pt)"
    )


def add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help=f"YAML config file (default: built-in defaults, as {DEFAULT_CONFIG_PATH})",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one config value; repeatable",
    )


def config_from(args: argparse.Namespace) -> HeliusConfig:
    return load_config(args.config, args.overrides)


def torch_threads() -> int:
    """torch's CPU threads now: quoted beside every speed, which depends on it."""
    import torch

    return torch.get_num_threads()


def check_config_matches(config_path: Path | None, vae_checkpoint: Path) -> None:
    """--config beside a checkpoint: the checkpoint's own config is what runs; when the file
    describes another model (other model keys or sample rate), say which keys differ."""
    if config_path is None:
        return
    from helius.models.checkpoint import checkpoint_config, load_checkpoint

    given = load_config(config_path)
    stored = checkpoint_config(load_checkpoint(vae_checkpoint), vae_checkpoint)
    differ = _differences(
        {"model": given.model.model_dump(), "data.sample_rate": given.data.sample_rate},
        {"model": stored.model.model_dump(), "data.sample_rate": stored.data.sample_rate},
    )
    if differ:
        shown = ", ".join(differ[:4]) + (f" and {len(differ) - 4} more" if len(differ) > 4 else "")
        print(
            f"note: {config_path} describes another model than {vae_checkpoint} ({shown}); "
            "the checkpoint's own config is used",
            file=sys.stderr,
        )


def _differences(given: dict, stored: dict, prefix: str = "") -> list[str]:
    found = []
    for key in given:
        path = f"{prefix}{key}"
        if isinstance(given[key], dict) and isinstance(stored.get(key), dict):
            found += _differences(given[key], stored[key], f"{path}.")
        elif given[key] != stored.get(key):
            found.append(f"{path} {given[key]!r} vs {stored.get(key)!r}")
    return found
