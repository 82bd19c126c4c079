"""Helpers shared by the CLI modules: subcommand registration, --vae_ckpt and --config/--set."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from helius.config import DEFAULT_CONFIG_PATH, HeliusConfig, load_config


def command(commands, name: str, run: Callable, help_text: str) -> argparse.ArgumentParser:
    sub = commands.add_parser(
        name,
        help=help_text,
        description=help_text,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sub.set_defaults(run=run)
    return sub


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
