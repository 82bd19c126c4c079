"""`python -m helius` is the `helius` command."""

import sys

from helius.cli import main

sys.exit(main())
