"""CLI for the latent explorer: `helius explore` serves the web page on this machine."""

from __future__ import annotations

import argparse
import ipaddress
import socket
from pathlib import Path

from helius.cli.common import add_vae_checkpoint, command, torch_threads
from helius.errors import ConfigError

LOCAL_NAMES = ["127.0.0.1", "localhost"]


SYSTEM = "LatentAudio"


def add_commands(commands) -> None:
    explore = command(
        commands,
        "explore",
        _run_explore,
        "open the latent explorer in a browser: sound map, sliders, morphs, walks, presets, "
        "training",
    )
    add_vae_checkpoint(explore, required=True)
    explore.add_argument(
        "--data",
        type=Path,
        default=None,
        help="clips for the Data map: an index file, a prepared data folder or any audio folder",
    )
    explore.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on; 0.0.0.0 opens the explorer to your whole network",
    )
    explore.add_argument("--port", type=int, default=8765, help="TCP port; 0 picks a free one")
    explore.add_argument(
        "--max-upload-mb",
        "--max_upload_mb",
        type=float,
        default=50.0,
        help="largest audio file the page may upload",
    )
    explore.add_argument(
        "--run_dir",
        "--run-dir",
        type=Path,
        default=Path("explorer_runs"),
        help="folder of the training runs started from the Train tab",
    )
    explore.add_argument(
        "--vocoder",
        type=Path,
        default=None,
        help="for a mel VAE (helius harmonic) checkpoint: the vocoder its sounds come out "
        "through (default: Griffin-Lim)",
    )
    explore.add_argument(
        "--device",
        default="auto",
        help="device of the model: auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps",
    )


def _run_explore(args: argparse.Namespace) -> int:
    import uvicorn

    from helius.ui import create_app

    if args.max_upload_mb <= 0:
        raise ConfigError("--max-upload-mb must be positive")
    port = _check_port(args.host, args.port)
    from helius.train.runtime import pick_device

    device = pick_device(args.device)
    app = create_app(
        args.vae_ckpt,
        data_dir=args.data,
        max_upload_bytes=int(args.max_upload_mb * 2**20),
        run_dir=args.run_dir,
        device=str(device),
        allowed_hosts=_local_names(args.host),
        vocoder=args.vocoder,
    )
    shown_host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"Helius explorer: http://{shown_host}:{port}/  (Ctrl+C stops it)", flush=True)
    print(f"the model runs on {device} ({torch_threads()} CPU thread(s))", flush=True)
    if not _is_loopback(args.host):
        print(f"note: listening on {args.host}, so other machines can reach it", flush=True)
    uvicorn.run(app, host=args.host, port=port, log_level="warning")
    return 0


def _local_names(host: str) -> list[str] | None:
    """Host headers to accept: served locally, only local names (against DNS rebinding).

    None (any) when the explorer is opened to the network on purpose, and for an IPv6
    literal, whose bracketed Host header the check cannot parse.
    """
    if not _is_loopback(host) or ":" in host:
        return None
    return sorted({*LOCAL_NAMES, host})


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_port(host: str, port: int) -> int:
    """The port to serve on (a free one for 0); a taken port is a user error, said plainly."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port {port}: use 1..65535, or 0 for a free port")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((host, port))
            return probe.getsockname()[1]
    except OSError as error:
        raise ConfigError(
            f"cannot listen on {host}:{port} ({error.strerror}); choose another --port "
            "(0 picks a free one)"
        ) from None
