"""CLI for the prior and generation: train-prior, dream, stream (Helius core)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from helius.cli.common import (
    add_config_options,
    add_vae_checkpoint,
    check_config_matches,
    command,
    config_from,
    torch_threads,
)

SEED_CONFIG_HELP = (
    "the config the VAE was trained with (the seed's command lines pass it): checkpoints carry "
    "their own config, so this only checks that it describes the same model and says where not"
)


def add_commands(commands) -> None:
    prior = command(
        commands,
        "train-prior",
        run_train_prior,
        "train the latent prior on the latents of a trained wave VAE",
    )
    add_config_options(prior)
    add_vae_checkpoint(prior, required=True)
    prior.add_argument("--resume", action="store_true", help="continue from prior_last.pt")
    prior.add_argument("--quiet", action="store_true", help="no progress bar")

    dream = command(
        commands,
        "dream",
        _run_dream,
        "generate audio from the prior (dream mode), optionally continuing a prompt",
    )
    dream.add_argument("--config", type=Path, default=None, help=SEED_CONFIG_HELP)
    add_vae_checkpoint(dream, required=True)
    dream.add_argument("--prior_ckpt", "--prior-ckpt", type=Path, required=True, help="prior")
    dream.add_argument("--length_seconds", "--length-seconds", type=float, default=10.0)
    dream.add_argument("--temperature", type=float, default=1.0, help="0: most likely bins")
    dream.add_argument("--seed", type=int, default=0, help="random seed")
    dream.add_argument("--prompt", type=Path, default=None, help="audio file to continue")
    dream.add_argument(
        "--output", type=Path, default=Path("generated/generated.wav"), help="WAV/FLAC file"
    )
    dream.add_argument("--quiet", action="store_true", help="no progress bar")

    stream = command(
        commands,
        "stream",
        _run_stream,
        "transform an audio file block by block through the streaming VAE",
    )
    stream.add_argument("--config", type=Path, default=None, help=SEED_CONFIG_HELP)
    add_vae_checkpoint(stream, required=True)
    stream.add_argument(
        "--prior_ckpt", "--prior-ckpt", type=Path, default=None, help="prior (for --prior_mix)"
    )
    stream.add_argument("--input_wav", "--input-wav", type=Path, required=True, help="input")
    stream.add_argument(
        "--output_wav",
        "--output-wav",
        type=Path,
        default=Path("generated/streaming_out.wav"),
        help="WAV/FLAC file to write",
    )
    stream.add_argument(
        "--block_size", "--block-size", type=int, default=2048, help="samples per block"
    )
    add_transform_options(stream)
    add_precision_option(stream)
    stream.add_argument("--quiet", action="store_true", help="no progress bar")


def add_precision_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--precision",
        choices=["float32", "int8"],
        default="float32",
        help="int8: int8 weights (spectral models), about 4x faster on a CPU, output within "
        "about -38 dB of float32 (default: float32)",
    )


def add_transform_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("latent transformation (applied in this order)")
    group.add_argument(
        "--scale", type=float, nargs="+", default=[1.0], help="per-dimension gain (1 or D values)"
    )
    group.add_argument(
        "--bias", type=float, nargs="+", default=[0.0], help="per-dimension offset (1 or D)"
    )
    group.add_argument("--noise", type=float, default=0.0, help="std of added latent noise")
    group.add_argument(
        "--prior_mix",
        "--prior-mix",
        type=float,
        default=0.0,
        help="0: pure transformation .. 1: the prior's prediction driven by the input",
    )
    group.add_argument("--temperature", type=float, default=1.0, help="prior sampling")
    group.add_argument("--seed", type=int, default=0, help="random seed")


def transform_from(args: argparse.Namespace):
    from helius.generate.stream import LatentTransform

    return LatentTransform(
        scale=args.scale,
        bias=args.bias,
        noise=args.noise,
        prior_mix=args.prior_mix,
        temperature=args.temperature,
        seed=args.seed,
    )


def run_train_prior(args: argparse.Namespace) -> int:
    from helius.train.prior_task import train_prior

    config = data_of_the_vae(config_from(args), args.vae_ckpt, args.overrides)
    if int(os.environ.get("RANK", "0")) == 0:
        print(
            f"encoding the VAE's latents of {config.data.train_index} and "
            f"{config.data.val_index}; the prior is saved in {config.prior.train.checkpoint_dir}"
        )
    result, final, latents = train_prior(config, args.vae_ckpt, resume=args.resume)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under torchrun, rank 0 reports for everyone
    frames = sum(run.shape[-1] for run in latents.train)
    source = "cached" if latents.from_cache else "encoded"
    print(
        f"latents: {len(latents.train)} training runs, {frames} frames ({source}: "
        f"{latents.cache_path})"
    )
    nll = result.last_validation.get("nll_per_frame")
    summary = f", validation NLL {nll:.3f} nats/frame" if nll is not None else ""
    print(f"trained the {config.prior.kind} prior to step {result.step}{summary}; wrote {final}")
    return 0


# The prior takes its data indexes and checkpoint folder from the VAE checkpoint it is trained
# on unless --set names them: its latents must come from the data that VAE learned, wherever
# --config points (#14 item 4).
def data_of_the_vae(config, vae_checkpoint: Path, overrides: list[str]):
    """`config` with the VAE checkpoint's data indexes and checkpoint folder, except the keys
    given with --set."""
    from helius.models.checkpoint import checkpoint_config, load_checkpoint

    given = {override.split("=", 1)[0].strip() for override in overrides}
    vae = checkpoint_config(load_checkpoint(vae_checkpoint), vae_checkpoint)
    data = {
        name: getattr(vae.data, name)
        for name in ("train_index", "val_index")
        if f"data.{name}" not in given
    }
    train = config.prior.train
    if "prior.train.checkpoint_dir" not in given:
        train = train.model_copy(update={"checkpoint_dir": vae.train.checkpoint_dir})
    return config.model_copy(
        update={
            "data": config.data.model_copy(update=data),
            "prior": config.prior.model_copy(update={"train": train}),
        }
    )


def _run_dream(args: argparse.Namespace) -> int:
    from helius.generate.dream import dream_to_file

    check_config_matches(args.config, args.vae_ckpt)
    result = dream_to_file(
        args.vae_ckpt,
        args.prior_ckpt,
        args.output,
        args.length_seconds,
        temperature=args.temperature,
        seed=args.seed,
        prompt_path=args.prompt,
    )
    prompt = f" after {result.prompt_seconds:.2f} s of prompt" if result.prompt_seconds else ""
    print(
        f"wrote {result.output}: {result.seconds:.2f} s dreamed{prompt} at "
        f"{result.realtime_factor:.1f}x real time on {torch_threads()} thread(s)"
    )
    return 0


def _run_stream(args: argparse.Namespace) -> int:
    from helius.generate.stream import stream_file

    check_config_matches(args.config, args.vae_ckpt)
    result = stream_file(
        args.vae_ckpt,
        args.input_wav,
        args.output_wav,
        block_size=args.block_size,
        transform=transform_from(args),
        prior_checkpoint=args.prior_ckpt,
        precision=args.precision,
    )
    print(
        f"wrote {result.output} ({result.seconds:.2f} s): the model ran at "
        f"{result.realtime_factor:.1f}x real time on {torch_threads()} thread(s) "
        f"({result.total_realtime_factor:.1f}x counting reading, resampling and writing), "
        f"latency {result.latency_ms:.1f} ms (block {result.block_size} + model "
        f"{result.latency_samples} samples at {result.sample_rate} Hz)"
    )
    return 0
