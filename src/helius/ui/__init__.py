"""The web explorer: a FastAPI app (sound map, sliders, morphs, walks, presets, training) and
its static page. Start it with `helius explore --vae_ckpt CKPT`."""

from __future__ import annotations

from helius.ui.app import create_app

__all__ = ["create_app"]
