"""The seed's `python inference.py --vae_ckpt ... --prior_ckpt ... --length_seconds 10`: as
`helius dream` (default output generated/generated.wav)."""

import sys
from pathlib import Path

try:
    from helius.cli import main
except ImportError:  # run from a checkout that is not pip-installed
    sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))
    from helius.cli import main

if __name__ == "__main__":
    sys.exit(main(["dream", *sys.argv[1:]]))
