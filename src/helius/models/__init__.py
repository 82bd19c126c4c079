"""Neural models: the streaming wave VAE, the clip VAE with a skip generator, the latent prior.

Each kind's builder takes a whole validated config and is named by its entry in
`helius.registry`; nothing here branches on kind names.
"""

from __future__ import annotations

from torch import nn

from helius import registry
from helius.config import AudioVAEConfig, DataConfig, ModelConfig


def build_model(config: ModelConfig, sample_rate: int, channels: int = 1) -> nn.Module:
    """An audio VAE (wave_vae, clip_vae) from its model section, rate and channel count."""
    if channels not in (1, 2):
        raise ValueError(f"audio VAEs take 1 or 2 channels, not {channels}")
    data = DataConfig(sample_rate=sample_rate, mono=channels == 1)
    return registry.get(config.kind).build(AudioVAEConfig(model=config, data=data))


def channels_of(config: AudioVAEConfig) -> int:
    return 1 if config.data.mono else 2


def build_wave_vae(config: AudioVAEConfig) -> nn.Module:
    from helius.models.wave_vae import WaveVAE

    return WaveVAE(config.model, sample_rate=config.data.sample_rate, channels=channels_of(config))


def build_clip_vae(config: AudioVAEConfig) -> nn.Module:
    from helius.models.clip_vae import ClipVAE

    return ClipVAE(config.model, sample_rate=config.data.sample_rate, channels=channels_of(config))


def build_prior(config: AudioVAEConfig) -> nn.Module:
    from helius.models.prior import build_prior as prior_of

    return prior_of(config.prior, config.model.latent_dim)
