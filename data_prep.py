"""The seed's `python data_prep.py --input_dir ... --output_dir data ...`: same as `helius prep`."""

import sys
from pathlib import Path

try:
    from helius.cli import main
except ImportError:  # run from a checkout that is not pip-installed
    sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))
    from helius.cli import main

if __name__ == "__main__":
    sys.exit(main(["prep", *sys.argv[1:]]))
