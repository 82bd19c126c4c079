"""CLI of the Helius core (wave VAE + latent prior): train-prior, dream, stream, live, export.

`helius train`, `eval` and `recon` serve every audio VAE kind and live in cli/models.py.
"""

from __future__ import annotations

from helius.cli.core import export, generate, live

SYSTEM = "Helius core"


def add_commands(commands) -> None:
    generate.add_commands(commands)
    live.add_commands(commands)
    export.add_commands(commands)
