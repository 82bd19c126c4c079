"""Fixtures shared by the HarmonicVAE tests: a tiny untrained dense mel VAE at 8 kHz."""

from __future__ import annotations

import pytest
import torch

from helius.harmonic.config import MelVAEModelConfig
from helius.harmonic.mel_vae import MelVAE


@pytest.fixture(scope="module")
def model() -> MelVAE:
    torch.manual_seed(0)
    config = MelVAEModelConfig(
        segment_length=0.25,
        n_mels=16,
        n_fft=256,
        hop_length=64,
        hidden_dims=[32],
        latent_dim=4,
        architecture="mlp",
    )
    return MelVAE(config, 8000).eval()
