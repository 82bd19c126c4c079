"""CLI for HarmonicVAE: `helius harmonic --mode ...` with the training manual's flags (also as
`python -m helius.harmonic ...`). Each mode calls the library: download, the one prep and
validate-data, the shared trainer, the Optuna study, sampling and visualization.

`--config FILE` takes either the manual's flat JSON (keys named as the flags: {"epochs": 100,
"hidden_dims": [1024, 512, 256], ...}) or a Helius config with data/model/train sections; flags
given on the command line override the file.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from helius.cli.common import command
from helius.config.base import read_raw
from helius.errors import ConfigError

SYSTEM = "HarmonicVAE"
MODES = ("download", "preprocess", "train", "tune", "validate_data", "generate", "interpolate")
MODES += ("visualize",)
HELIUS_SECTIONS = ("data", "model", "train")


def boolean(text: str) -> bool:
    """The manual writes `--augment True`: accept true/false, yes/no, 1/0."""
    value = text.strip().lower()
    if value in ("true", "yes", "1", "on"):
        return True
    if value in ("false", "no", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {text!r}")


def int_list(text: str) -> list[int]:
    """hidden_dims as the manual writes them: 1024,512,256 or [1024, 512, 256]."""
    try:
        return [int(part) for part in text.strip("[] ").replace(",", " ").split()]
    except ValueError:
        message = f"expected widths like 1024,512,256, got {text!r}"
        raise argparse.ArgumentTypeError(message) from None


def add_commands(commands) -> None:
    parser = command(
        commands,
        "harmonic",
        run,
        "HarmonicVAE (mel VAE): download, preprocess, train, tune, generate, visualize",
    )
    add_arguments(parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.register("action", None, _Given)  # plain flags of this command record themselves
    parser.set_defaults(parser=parser)
    flag = parser.add_argument
    flag("--mode", choices=MODES, default="train", help="what to do")
    flag(
        "--config",
        type=Path,
        default=None,
        help="JSON or YAML: the manual's flat keys or a "
        "Helius config (data/model/train); flags override it",
    )
    flag("--dataset", choices=("maestro", "gtzan", "custom", "combined"), default="custom")
    flag("--dataset_dir", type=Path, default=None, help="the data set's folder (download target)")
    flag("--maestro_dir", type=Path, default=None, help="MAESTRO folder (default data/maestro)")
    flag("--gtzan_dir", type=Path, default=None, help="GTZAN folder (default data/gtzan)")
    flag("--custom_dir", type=Path, default=None, help="folder of your own audio")
    flag("--output_dir", type=Path, default=Path("output/harmonic"), help="run folder")
    flag("--epochs", type=int, default=50)
    flag("--batch_size", type=int, default=32)
    flag("--latent_dim", type=int, default=128)
    flag(
        "--hidden_dims",
        type=int_list,
        default=None,
        help="the manual's dense (mlp) model with these widths, e.g. 1024,512,256",
    )
    flag(
        "--architecture",
        choices=("mlp", "conv"),
        default=None,
        help="default: mlp when --hidden_dims is given, else conv (measured better)",
    )
    flag("--learning_rate", type=float, default=1e-3)
    flag("--beta_start", type=float, default=0.0)
    flag("--beta_end", type=float, default=1.0, help="1 is the ELBO's own weight")
    flag("--beta_steps", type=int, default=10, help="epochs of KL annealing")
    flag("--segment_length", type=float, default=2.0, help="seconds per mel patch")
    flag("--sample_rate", type=int, default=22050, help="Hz")
    flag("--n_mels", type=int, default=128)
    flag("--n_fft", type=int, default=2048)
    flag("--hop_length", type=int, default=512)
    flag("--augment", type=boolean, nargs="?", const=True, default=False)
    flag("--augment_strength", type=float, default=0.5)
    flag("--validation_split", type=float, default=0.1, help="share of files held out")
    flag(
        "--resume_from",
        type=Path,
        default=None,
        help="a checkpoint in output_dir continues "
        "that run exactly; one from elsewhere fine-tunes its weights on this data",
    )
    flag(
        "--checkpoint_every",
        type=int,
        default=1,
        help="epochs between epoch checkpoints and visualizations",
    )
    flag("--use_tensorboard", type=boolean, nargs="?", const=True, default=True)
    flag(
        "--mixed_precision",
        type=boolean,
        nargs="?",
        const=True,
        default=True,
        help="bf16 autocast on CUDA (no effect on the CPU)",
    )
    flag("--grad_accum_steps", type=int, default=1)
    flag("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    flag("--overwrite", action="store_true", help="preprocess: redo every file from scratch")
    flag("--workers", type=int, default=None, help="prep processes (default: all cores)")
    flag("--seed", type=int, default=0)
    flag("--trials", type=int, default=20, help="tune: Optuna trials")
    flag("--trial_epochs", type=int, default=None, help="tune: epochs per trial (default --epochs)")
    flag(
        "--storage",
        default=None,
        help="tune: Optuna storage URL (default: SQLite in "
        "output_dir; a shared database URL lets several machines join one study)",
    )
    flag("--study_name", default="harmonic_vae", help="tune: the study's name in storage")
    flag(
        "--checkpoint",
        type=Path,
        default=None,
        help="generate/interpolate/visualize: mel "
        "VAE checkpoint (default output_dir/harmonic_vae_best.pt)",
    )
    flag(
        "--vocoder",
        type=Path,
        default=None,
        help="vocoder checkpoint for audio out (default: Griffin-Lim)",
    )
    flag("--griffin_lim_iterations", type=int, default=64)
    flag("--num_samples", type=int, default=8, help="generate: clips to write")
    flag("--temperature", type=float, default=1.0, help="generate: latent std")
    flag(
        "--inputs",
        type=Path,
        nargs=2,
        default=None,
        metavar=("A", "B"),
        help="interpolate: two audio files",
    )
    flag("--steps", type=int, default=8, help="interpolate: clips from A to B")
    flag("--method", choices=("linear", "slerp"), default="slerp", help="interpolate")
    flag(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override any Helius config value; repeatable",
    )
    flag("--quiet", action="store_true", help="no progress bars or epoch lines")


class _Given(argparse._StoreAction):
    """A store action that also records which flags the command line gave, so a config file
    fills in only the others (flags override the file)."""

    def __call__(self, parser, namespace, values, option_string=None):
        super().__call__(parser, namespace, values, option_string)
        namespace.given_flags = {*getattr(namespace, "given_flags", set()), self.dest}


def apply_flat_config(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The manual's flat config file under the flags given (a Helius config is left to the
    trainer's config loading)."""
    raw, _ = read_raw(args.config, None)
    if any(key in raw for key in HELIUS_SECTIONS):
        return
    known = {action.dest for action in parser._actions}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(
            f"{args.config}: unknown key(s) {', '.join(unknown)}; the keys are the flags of "
            "`helius harmonic --help` (or give a Helius config with data/model/train sections)"
        )
    given = getattr(args, "given_flags", set())
    for key, value in raw.items():
        if key not in given and key != "config":
            setattr(args, key, _typed(parser, key, value))


def _typed(parser: argparse.ArgumentParser, key: str, value: Any) -> Any:
    action = next(action for action in parser._actions if action.dest == key)
    if value is None or action.type is None or isinstance(value, list | bool):
        return Path(value) if action.type is Path and value is not None else value
    return action.type(str(value))


def run(args: argparse.Namespace) -> int:
    from helius.harmonic import modes

    if args.config is not None:
        apply_flat_config(args.parser, args)
    return modes.run(args)
