"""Reconstruction keeps a file's channel layout whatever the model's (helius recon)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from helius.generate.recon import _reconstruct_layout


class _Identity(nn.Module):
    """A stand-in VAE whose latent is its input: its reconstruction is exact."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.hop_samples = 4
        self.weight = nn.Parameter(torch.zeros(()))
        self.calls: list[int] = []

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        assert x.shape[1] == self.channels, "fed a layout the model does not take"
        self.calls.append(x.shape[1])
        return x, torch.zeros_like(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z


def test_a_mono_model_reconstructs_each_channel_on_its_own():
    rng = np.random.default_rng(0)
    stereo = rng.standard_normal((2, 50)).astype(np.float32)
    model = _Identity(channels=1)
    np.testing.assert_allclose(_reconstruct_layout(model, stereo), stereo)
    assert model.calls == [1, 1]


def test_a_stereo_model_takes_a_stereo_file_whole_and_a_mono_file_as_its_mixdown():
    rng = np.random.default_rng(1)
    stereo = rng.standard_normal((2, 48)).astype(np.float32)
    model = _Identity(channels=2)
    np.testing.assert_allclose(_reconstruct_layout(model, stereo), stereo)
    mono = stereo[:1]
    out = _reconstruct_layout(model, mono)
    assert out.shape == mono.shape
    np.testing.assert_allclose(out, mono, atol=1e-6)
    assert model.calls == [2, 2]
