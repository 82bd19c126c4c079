"""`python -m helius.harmonic --mode ...`: the training manual's command shape, the same as
`helius harmonic --mode ...`."""

import sys

from helius.cli import main

if __name__ == "__main__":
    sys.exit(main(["harmonic", *sys.argv[1:]]))
