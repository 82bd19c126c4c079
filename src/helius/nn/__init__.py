"""Reusable neural blocks: cached (streaming) convolutions, PQMF, Snake and residual units."""
