"""CLI for live audio: `helius live` (microphone -> streaming VAE -> speakers)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from helius import progress
from helius.cli.common import add_vae_checkpoint, command
from helius.cli.core.generate import add_precision_option, add_transform_options, transform_from
from helius.errors import ConfigError

STATUS_INTERVAL_SECONDS = 1.0


def add_commands(commands) -> None:
    live = command(
        commands,
        "live",
        _run_live,
        "transform the microphone through the streaming VAE to the speakers, live "
        "(needs PortAudio: see --list-devices)",
    )
    add_vae_checkpoint(live, required=False)
    live.add_argument(
        "--prior_ckpt", "--prior-ckpt", type=Path, default=None, help="prior (for --prior_mix)"
    )
    live.add_argument(
        "--input-device",
        "--input_device",
        type=device,
        default=None,
        help="microphone: index or part of the name (None: the system's default)",
    )
    live.add_argument(
        "--output-device",
        "--output_device",
        type=device,
        default=None,
        help="speakers: index or part of the name (None: the system's default)",
    )
    live.add_argument(
        "--block_size", "--block-size", type=int, default=2048, help="samples per sound card block"
    )
    live.add_argument(
        "--prefill_blocks",
        "--prefill-blocks",
        type=int,
        default=1,
        help="blocks of silence the model starts ahead by: fewer underruns, more latency",
    )
    add_transform_options(live)
    add_precision_option(live)
    live.add_argument(
        "--list-devices", "--list_devices", action="store_true", help="list sound devices, exit"
    )
    live.add_argument(
        "--seconds", type=float, default=None, help="stop after this long (None: run until Ctrl-C)"
    )
    live.add_argument("--quiet", action="store_true", help="no status line")


def device(text: str) -> int | str:
    """A device index, or a substring of its name (sounddevice matches it)."""
    return int(text) if text.strip().isdigit() else text


def _run_live(args: argparse.Namespace) -> int:
    from helius.generate import live

    if args.list_devices:
        print(format_devices(live.list_devices()))
        return 0
    if args.vae_ckpt is None:
        raise ConfigError("helius live needs --vae_ckpt (a causal wave VAE checkpoint)")
    if args.seconds is not None and args.seconds <= 0:
        raise ConfigError(f"--seconds must be positive, got {args.seconds}")
    if args.prefill_blocks < 0:
        raise ConfigError(f"--prefill_blocks must be >= 0, got {args.prefill_blocks}")
    session = live.open_session(
        args.vae_ckpt,
        args.prior_ckpt,
        transform_from(args),
        args.precision,
        block_size=args.block_size,
        input_device=args.input_device,
        output_device=args.output_device,
        prefill_samples=args.prefill_blocks * args.block_size,
    )
    rate = session.sample_rate
    block_ms, latency_ms = (1000 * n / rate for n in (args.block_size, session.latency_samples))
    until = "Ctrl-C stops" if args.seconds is None else f"stopping after {args.seconds:g} s"
    print(
        f"live at {rate} Hz, {session.channels} channel(s), blocks of {args.block_size} samples "
        f"({block_ms:.1f} ms); latency {latency_ms:.1f} ms plus the sound card's; {until}",
        file=sys.stderr,
    )
    session.start()
    bar = progress.bar(desc="starting", bar_format="live {elapsed} | {desc}")
    started = time.monotonic()
    try:
        while args.seconds is None or time.monotonic() - started < args.seconds:
            left = None if args.seconds is None else args.seconds - (time.monotonic() - started)
            _wait(STATUS_INTERVAL_SECONDS if left is None else min(STATUS_INTERVAL_SECONDS, left))
            session.check()
            bar.set_description_str(status_line(session.stats()))
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a live session ends
    finally:
        elapsed_seconds = time.monotonic() - started
        stats = session.stop()
        bar.close()
    session.check()
    print(summary(stats, elapsed_seconds))
    return 0


def _wait(seconds: float) -> None:
    time.sleep(max(0.0, seconds))


def status_line(stats) -> str:
    return (
        f"overruns {stats.overruns}, underruns {stats.underruns} | load {stats.mean_load:.2f} "
        f"mean, {stats.worst_load:.2f} worst | sound card: {stats.input_overflows} input "
        f"overflows, {stats.output_underflows} output underflows"
    )


def summary(stats, seconds: float) -> str:
    block_ms = 1000 * stats.block_size / stats.sample_rate
    lines = [
        f"live: {seconds:.1f} s, {stats.blocks} blocks of {stats.block_size} samples "
        f"({block_ms:.1f} ms) through the model",
        f"  compute per block: {1000 * stats.mean_compute_seconds:.1f} ms mean (load "
        f"{stats.mean_load:.2f}), {1000 * stats.worst_compute_seconds:.1f} ms worst (load "
        f"{stats.worst_load:.2f})",
        f"  overruns: {stats.overruns} ({stats.dropped_samples} input samples dropped); "
        f"underruns: {stats.underruns} ({stats.missing_samples / stats.sample_rate:.2f} s of "
        "silence played)",
        f"  sound card: {stats.input_overflows} input overflows, {stats.output_underflows} "
        "output underflows",
    ]
    if stats.overruns or stats.underruns:
        lines.append(
            "  the model fell behind: try a larger --block_size or --prefill_blocks, or a "
            "smaller model"
        )
    return "\n".join(lines)


def format_devices(devices: list[dict]) -> str:
    if not devices:
        return "no sound devices found (PortAudio sees none: is a sound card connected?)"
    lines = []
    for info in devices:
        mark = {(True, True): "*", (True, False): ">", (False, True): "<"}.get(
            (info["default_input"], info["default_output"]), " "
        )
        lines.append(
            f"{mark} {info['index']:>3}  {info['name']} ({info['host_api']}; "
            f"{info['max_input_channels']} in, {info['max_output_channels']} out; "
            f"{info['default_samplerate']:.0f} Hz)"
        )
    lines.append("> default input, < default output, * both; pass an index or part of a name")
    return "\n".join(lines)
