"""Helius: learn neural audio models from your own sounds, then generate, transform and explore."""

from helius.errors import HeliusError

__version__ = "0.1.0"
__all__ = ["HeliusError", "__version__"]
