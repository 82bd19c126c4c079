"""CLI for configuration and data: config show, prep, validate-data, demo-data."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from helius import progress, registry
from helius.cli.common import add_config_options, command, config_from
from helius.config import HeliusConfig, config_to_yaml
from helius.config.base import read_raw, validate
from helius.errors import ConfigError

SYSTEM = "every system"


def add_commands(commands) -> None:
    _add_config_commands(commands)
    _add_data_commands(commands)


# --- config ------------------------------------------------------------------------------------


def _add_config_commands(commands) -> None:
    config = commands.add_parser("config", help="show the resolved configuration")
    actions = config.add_subparsers(title="actions", metavar="ACTION")
    show = command(actions, "show", _run_config_show, "print the config after file and --set")
    add_config_options(show)
    show.add_argument(
        "--system",
        choices=sorted(registry.KINDS),
        default=None,
        help="the model kind whose config to show (default: the one model.kind names); "
        "helius config kinds lists them",
    )
    command(actions, "kinds", _run_config_kinds, "list the model kinds and their systems")


def _run_config_show(args: argparse.Namespace) -> int:
    if args.system is None:
        config = config_from(args)
    else:
        kind = registry.get(args.system)
        raw, source = read_raw(args.config, args.overrides)
        if kind.section == "model":  # the kind asked for, unless the file names one
            raw.setdefault("model", {}).setdefault("kind", kind.name)
        config = validate(kind.config_schema(), raw, source)
        if kind.section == "model" and config.model.kind != kind.name:
            raise ConfigError(
                f"{source} is a {config.model.kind} config, not {kind.name}: drop --system "
                "or model.kind"
            )
    print(config_to_yaml(config), end="")
    return 0


def _run_config_kinds(args: argparse.Namespace) -> int:
    for kind in registry.KINDS.values():
        print(f"{kind.name:<10} {kind.system:<12} {kind.summary}")
    return 0


# --- data --------------------------------------------------------------------------------------


def _add_data_commands(commands) -> None:
    prep = command(
        commands,
        "prep",
        _run_prep,
        "cut an audio folder into segments with train/val indexes and a report",
    )
    prep.add_argument(
        "--input_dir",
        "--input-dir",
        type=Path,
        required=True,
        help="folder of audio files, walked recursively (never modified)",
    )
    prep.add_argument(
        "--output_dir",
        "--output-dir",
        type=Path,
        default=Path("data"),
        help="where segments, indexes, manifest and report go",
    )
    prep.add_argument(
        "--segment_length",
        "--segment-length",
        type=float,
        default=None,
        help="segment length in seconds (default: data.segment_seconds, 2.0)",
    )
    prep.add_argument(
        "--sample_rate",
        "--sample-rate",
        type=int,
        default=None,
        help="output sample rate in Hz (default: data.sample_rate, 48000)",
    )
    prep.add_argument(
        "--val_fraction",
        "--val-fraction",
        type=float,
        default=None,
        help="share of source files held out for validation (default: 0.02)",
    )
    prep.add_argument(
        "--silence_threshold_db",
        "--silence-threshold-db",
        type=float,
        default=None,
        help="drop segments with RMS below this dBFS (default: -60)",
    )
    prep.add_argument("--stereo", action="store_true", help="keep channels instead of mono")
    prep.add_argument(
        "--one_shot",
        "--one-shot",
        action="store_true",
        help="one clip per file (one-shot libraries): trimmed to the onset, padded or cut to "
        "--segment_length, nothing dropped for being short (default: data.one_shot)",
    )
    prep.add_argument(
        "--workers", type=int, default=None, help="parallel processes (default: all cores)"
    )
    prep.add_argument("--overwrite", action="store_true", help="redo every file from scratch")
    prep.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_options(prep)

    validate = command(
        commands,
        "validate-data",
        _run_validate,
        "check that every audio file in a folder decodes; writes nothing",
    )
    validate.add_argument("folder", type=Path, help="folder to check, walked recursively")
    validate.add_argument(
        "--silence_threshold_db",
        "--silence-threshold-db",
        type=float,
        default=-60.0,
        help="windows below this dBFS count as silent",
    )
    validate.add_argument("--workers", type=int, default=None, help="parallel processes")
    validate.add_argument("--json", action="store_true", help="print JSON instead of a table")
    validate.add_argument("--quiet", action="store_true", help="no progress bar")

    demo_data = command(
        commands,
        "demo-data",
        _run_demo_data,
        "write the built-in procedural dataset (drum one-shots and textures)",
    )
    demo_data.add_argument("out", type=Path, help="output folder")
    demo_data.add_argument("--n", type=int, default=200, help="number of drum one-shots")
    demo_data.add_argument("--textures", type=int, default=16, help="number of 10-second textures")
    demo_data.add_argument("--seed", type=int, default=0, help="random seed")
    demo_data.add_argument("--sample_rate", "--sample-rate", type=int, default=44100, help="Hz")
    demo_data.add_argument("--quiet", action="store_true", help="no progress bar")


def _prep_settings(args: argparse.Namespace, config: HeliusConfig):
    from helius.data.segment import PrepSettings

    data = config.data
    return PrepSettings(
        sample_rate=args.sample_rate or data.sample_rate,
        segment_seconds=args.segment_length or data.segment_seconds,
        mono=data.mono and not args.stereo,
        one_shot=args.one_shot or data.one_shot,
        silence_threshold_db=(
            data.silence_threshold_db
            if args.silence_threshold_db is None
            else args.silence_threshold_db
        ),
    )


def _run_prep(args: argparse.Namespace) -> int:
    from helius.data.prep import prepare

    config = config_from(args)
    val_fraction = config.data.val_fraction if args.val_fraction is None else args.val_fraction
    result = prepare(
        args.input_dir,
        args.output_dir,
        _prep_settings(args, config),
        val_fraction=val_fraction,
        workers=args.workers,
        overwrite=args.overwrite,
    )
    print(result.summary())
    return 0


def _run_validate(args: argparse.Namespace) -> int:
    from helius.data.validate import format_table, validate_folder

    checks, ignored = validate_folder(args.folder, args.silence_threshold_db, args.workers)
    if args.json:
        print(
            json.dumps({"files": [asdict(check) for check in checks], "ignored": ignored}, indent=2)
        )
    else:
        print(format_table(checks, ignored))
    return 0 if any(check.ok for check in checks) else 1


def _run_demo_data(args: argparse.Namespace) -> int:
    from helius.audio.synth import write_demo_dataset

    dataset = write_demo_dataset(
        args.out,
        n_oneshots=args.n,
        n_textures=args.textures,
        seed=args.seed,
        sample_rate=args.sample_rate,
        progress=lambda items: progress.bar(items, desc="demo-data"),
    )
    print(
        f"wrote {len(dataset.files)} sounds to {dataset.out_dir} "
        f"(one-shots in oneshots/, textures in textures/, parameters in params.jsonl)"
    )
    return 0
