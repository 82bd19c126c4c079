"""The `helius` command: parses arguments and calls the library, one function per subcommand.

Subcommands live beside this file, one module per system (core/ for the wave VAE and its prior,
explore.py for LatentAudio, harmonic.py for HarmonicVAE, edit.py for the Audio Editor) and one
per shared area (data.py, models.py, demo.py); each has a SYSTEM name and an `add_commands` that
registers its parsers.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from helius import __version__, progress
from helius.cli import core, data, demo, edit, explore, harmonic, models
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


START = "start here:  helius demo   the whole pipeline on built-in sounds, on the CPU (~5 min)"
GUIDES = (
    "Each command explains its options, with defaults and units: helius COMMAND --help.\n"
    "Guides: docs/core.md (the pipeline), docs/explorer.md (the explorer), "
    "docs/harmonic.md (the mel VAE), docs/architecture.md (the layers, the model kinds)."
)
# One module per system (each has SYSTEM and add_commands); the help lists commands by system.
MODULES = (data, models, demo, core, explore, harmonic, edit)


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the epilog's layout and shows every option's default."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="helius",
        description="Learn neural audio models from your own sounds; generate, transform, explore.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"helius {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    by_system: dict[str, list[str]] = {}
    for module in MODULES:
        before = set(commands.choices)
        module.add_commands(commands)
        added = [name for name in commands.choices if name not in before]
        by_system.setdefault(module.SYSTEM, []).extend(added)
    width = max(len(system) for system in by_system) + 2
    groups = [f"{system + ':':<{width}} {', '.join(names)}" for system, names in by_system.items()]
    parser.epilog = "\n".join([START, "commands by system:", *groups, GUIDES])
    return parser
