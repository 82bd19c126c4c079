"""CLI for export: a streaming TorchScript file for nn~-style hosts."""

from __future__ import annotations

import argparse
from pathlib import Path

from helius.cli.common import add_vae_checkpoint, command


def add_commands(commands) -> None:
    export = command(
        commands,
        "export",
        _run_export,
        "write a causal wave VAE (and optionally its prior) as a streaming TorchScript file "
        "with nn~-style encode/decode/forward(/prior) methods",
    )
    add_vae_checkpoint(export, required=True)
    export.add_argument(
        "--prior_ckpt",
        "--prior-ckpt",
        type=Path,
        default=None,
        help="prior checkpoint (.pt) trained on this VAE: adds the `prior` method",
    )
    export.add_argument("--output", type=Path, default=Path("model.ts"), help="file to write")
    export.add_argument(
        "--batch_size",
        "--batch-size",
        type=int,
        default=1,
        help="batch size the streaming state is built for (nn~: 1)",
    )
    export.add_argument("--quiet", action="store_true", help="print only the file written")


def _run_export(args: argparse.Namespace) -> int:
    from helius.generate.export import export_model

    result = export_model(
        args.vae_ckpt, args.output, prior_checkpoint=args.prior_ckpt, batch_size=args.batch_size
    )
    print(
        f"wrote {result.output} ({result.size_bytes / 1e6:.1f} MB), a {result.sample_rate} Hz "
        "model: run the host at that rate (nn~ does not resample)"
    )
    if args.quiet:
        return 0
    for name in result.methods:
        in_channels, in_ratio, out_channels, out_ratio = result.method_params[name]
        print(
            f"  {name}: {in_channels} channel(s), ratio {in_ratio} -> "
            f"{out_channels} channel(s), ratio {out_ratio}"
        )
    noise = "on (decode adds random noise)" if result.noise_branch else "off"
    print(
        f"  {result.sample_rate} Hz, hop {result.hop_samples} samples, latency "
        f"{result.latency_samples} samples ({result.latency_ms:.1f} ms), noise branch {noise}"
    )
    return 0
