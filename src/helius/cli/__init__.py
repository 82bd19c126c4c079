"""The `helius` command: parses arguments and calls the library, one function per subcommand.

Subcommands live beside this file by area (data.py, models.py); each module's `add_commands`
registers its parsers.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from helius import __version__, progress
from helius.cli import data, demo, explore, export, generate, live, models
from helius.cli.common import apply_threads
from helius.errors import HeliusError


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    progress.set_enabled(not getattr(args, "quiet", False))
    apply_threads(args)
    try:
        return args.run(args) or 0
    except HeliusError as error:
        print(f"helius: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("helius: interrupted", file=sys.stderr)
        return 130


EPILOG = """\
start here:  helius demo        the whole pipeline on built-in sounds, on the CPU (~5 min)
data:        prep, validate-data, demo-data, config show
train:       train, train-prior, eval, recon
generate:    dream, stream, live, export
look:        explore, report
Each command explains its options, with defaults and units: helius COMMAND --help.
Guides: docs/core.md (the pipeline), docs/explorer.md (the explorer)."""


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the epilog's layout and shows every option's default."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="helius",
        description="Learn neural audio models from your own sounds; generate, transform, explore.",
        epilog=EPILOG,
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"helius {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    data.add_commands(commands)
    demo.add_commands(commands)
    models.add_commands(commands)
    generate.add_commands(commands)
    export.add_commands(commands)
    live.add_commands(commands)
    explore.add_commands(commands)
    return parser
