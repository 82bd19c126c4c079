"""Neural models: the streaming wave VAE, the clip VAE with a skip generator, and their registry."""

from __future__ import annotations

from torch import nn

from helius.config import ModelConfig


def build_model(config: ModelConfig, sample_rate: int, channels: int = 1) -> nn.Module:
    """The model that `config.kind` names, built from the config alone."""
    if config.kind == "wave_vae":
        from helius.models.wave_vae import WaveVAE

        return WaveVAE(config, sample_rate=sample_rate, channels=channels)
    if config.kind == "clip_vae":
        from helius.models.clip_vae import ClipVAE

        return ClipVAE(config, sample_rate=sample_rate, channels=channels)
    raise ValueError(f"unknown model kind {config.kind!r}")
