"""The seed's `python train.py --config configs/config.yaml [...]`: same as `helius train`."""

import sys
from pathlib import Path

try:
    from helius.cli import main
except ImportError:  # run from a checkout that is not pip-installed
    sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))
    from helius.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
