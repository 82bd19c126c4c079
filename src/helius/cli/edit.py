"""CLI for the Audio Editor: `helius edit ACTION`, one subcommand per step of its pipeline
(synth: synthetic pairs from music; pairs: what a training-data folder holds; align: pointer
sequences for pairs by aligning each edit with its raw track; train: the pointer network)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from helius.cli.common import add_config_options, command, positive_int
from helius.edit.programs import PROGRAM_KINDS, SynthSettings

SYSTEM = "Audio Editor"


def add_commands(commands) -> None:
    edit = commands.add_parser(
        "edit",
        help="Audio Editor (pointer network over frames): synthetic pairs, pair reports, alignment",
        description="Audio Editor: learns edits from raw/edited pairs of music. "
        "Run `helius edit ACTION --help` for an action's options.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    edit.set_defaults(run=lambda args: _show_help(edit))
    actions = edit.add_subparsers(title="actions", metavar="ACTION")
    _add_synth(actions)
    _add_pairs(actions)
    _add_align(actions)
    _add_train(actions)


def _show_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _action(actions, name: str, run: Callable, help_text: str) -> argparse.ArgumentParser:
    """An action that runs no model. Actions that do (train, apply) are added with
    cli.common.command, which also gives them --threads."""
    sub = actions.add_parser(
        name,
        help=help_text,
        description=help_text,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sub.set_defaults(run=run)
    return sub


def program_weights(text: str) -> dict[str, float]:
    """--programs radio_edit=1,extended=0.5 (a kind without a weight gets 1)."""
    weights = {}
    for part in filter(None, (item.strip() for item in text.split(","))):
        kind, _, weight = part.partition("=")
        try:
            weights[kind.strip()] = float(weight) if weight else 1.0
        except ValueError:
            message = f"expected KIND=WEIGHT pairs like radio_edit=1,trim=0.5, got {part!r}"
            raise argparse.ArgumentTypeError(message) from None
    return weights


def optional_seconds(text: str) -> float | None:
    """Seconds, or 0 / none for no limit."""
    if text.strip().lower() in ("0", "none", ""):
        return None
    return float(text)


def share(text: str) -> float:
    """A number from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be from 0 to 1, got {value:g}")
    return value


def _add_synth(actions) -> None:
    synth = _action(
        actions,
        "synth",
        _run_synth,
        "make synthetic raw/edit pairs with known pointers from a folder of music: seeded "
        "edit programs (radio edit, extended mix, phrase swap, trims, fades) on its beat grid",
    )
    flag = synth.add_argument
    flag("--input_dir", type=Path, required=True, help="folder of music (searched recursively)")
    flag("--output_dir", type=Path, default=Path("training_data"), help="training-data folder")
    flag("--n", type=positive_int, required=True, help="pairs to make (round-robin over tracks)")
    flag("--seed", type=int, default=0, help="the same seed makes the same pairs")
    flag(
        "--max_seconds",
        type=optional_seconds,
        default=120.0,
        help="crop each raw track to its first seconds (0: whole track)",
    )
    mix = ",".join(f"{kind}={weight:g}" for kind, weight in SynthSettings().programs.items())
    flag(
        "--programs",
        type=program_weights,
        default=mix,
        help=f"mix of program kinds as KIND=WEIGHT,... ({', '.join(PROGRAM_KINDS)}); "
        "unlisted kinds get 0",
    )
    flag("--crossfade_ms", type=float, default=10.0, help="equal-power crossfade at each jump")
    flag("--min_bars", type=int, default=8, help="tracks with fewer whole bars are skipped")
    flag("--quiet", action="store_true", help="no progress bars")


def _run_synth(args: argparse.Namespace) -> int:
    from helius.config.base import validate
    from helius.edit.synth import synthesize_pairs

    values = {"programs": args.programs, "max_seconds": args.max_seconds}
    values |= {"crossfade_ms": args.crossfade_ms, "min_bars": args.min_bars}
    settings = validate(SynthSettings, values, "helius edit synth flags")
    report = synthesize_pairs(args.input_dir, args.output_dir, args.n, settings, args.seed)
    print(report.summary())
    return 0


def _add_pairs(actions) -> None:
    pairs = _action(
        actions,
        "pairs",
        _run_pairs,
        "list a training-data folder's raw/edit pairs (input/NAME_raw.*, "
        "desired_output/NAME_edit.wav), its reference tracks and every file skipped, with why",
    )
    pairs.add_argument("--data_dir", type=Path, default=Path("training_data"))
    pairs.add_argument("--min_seconds", type=float, default=5.0, help="shorter files are skipped")


def _run_pairs(args: argparse.Namespace) -> int:
    from helius.edit.pairs import find_pairs

    print(find_pairs(args.data_dir, args.min_seconds).summary())
    return 0


def _add_align(actions) -> None:
    from helius.edit.align import AlignSettings

    align = _action(
        actions,
        "align",
        _run_align,
        "align each edit of a training-data folder with its raw track: writes "
        "aligned/NAME.npz (pointers, ops, gains; pointer_sequences/ is left as it is) and "
        "aligned/report.json with every pair's quality",
    )
    flag = align.add_argument
    flag("--data_dir", type=Path, default=Path("training_data"), help="training-data folder")
    flag(
        "--threshold",
        type=share,
        default=AlignSettings().threshold,
        help="pairs whose quality (share of frames that match their raw frame) is under this "
        "are reported as poorly aligned",
    )
    flag("--no_beats", action="store_true", help="no beat tracking: jumps cost the same anywhere")
    flag("--quiet", action="store_true", help="no progress bars")


def _run_align(args: argparse.Namespace) -> int:
    from helius.edit.align import align_folder

    report = align_folder(args.data_dir, args.threshold, beats=not args.no_beats)
    print(report.summary())
    return 0


def _add_train(actions) -> None:
    train = command(
        actions,
        "train",
        _run_train,
        "train the pointer editor (model kind pointer_editor) on a training-data folder's pairs "
        "that have pointer sequences (pointer_sequences/ from synth, aligned/ from align)",
    )
    train.add_argument("--data_dir", type=Path, required=True, help="training-data folder")
    add_config_options(train)  # --config (e.g. configs/editor_mini.yaml) and --set
    train.add_argument("--mini", action="store_true", help="the seed's mini size (d_model 128)")
    train.add_argument("--resume", action="store_true", help="continue from checkpoint_dir/last.pt")
    train.add_argument("--quiet", action="store_true", help="no progress bar")


def _run_train(args: argparse.Namespace) -> int:
    from helius.config import load_config
    from helius.edit.config import MINI_OVERRIDES
    from helius.edit.task import PointerEditorTask
    from helius.train.trainer import fit

    overrides = ["model.kind=pointer_editor", *(MINI_OVERRIDES if args.mini else ())]
    overrides += [*args.overrides, f"data.data_dir={args.data_dir}"]
    config = load_config(args.config, overrides)
    result = fit(config, PointerEditorTask(config), resume=args.resume)
    print(
        f"trained pointer_editor to step {result.step} (epoch {result.epoch}) in "
        f"{result.elapsed_seconds:.1f} s; checkpoints in {result.checkpoint_dir}"
    )
    validation = {k: v for k, v in result.last_validation.items() if isinstance(v, float)}
    if validation:
        print("validation: " + ", ".join(f"{k} {v:.4g}" for k, v in sorted(validation.items())))
    if result.interrupted:
        print(f"interrupted: saved {result.last_path}; continue with --resume")
    return 0
