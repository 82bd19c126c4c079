"""Helpers shared by the CLI modules: subcommand registration, --vae_ckpt and --config/--set."""

from __future__ import annotations

import argparse
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
