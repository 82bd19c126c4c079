"""The seed's `python inference_streaming.py --vae_ckpt ... --input_wav in.wav --output_wav
out.wav`: as `helius stream` (block-by-block transformation through the streaming VAE)."""

import sys
from pathlib import Path

try:
    from helius.cli import main
except ImportError:  # run from a checkout that is not pip-installed
    sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))
    from helius.cli import main

if __name__ == "__main__":
    sys.exit(main(["stream", *sys.argv[1:]]))
