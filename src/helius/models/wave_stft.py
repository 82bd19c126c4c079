"""The wave VAE's spectral design (`model.wave.transform: stft`): its encoder and decoder.

Encoder: log-magnitudes of causal STFT frames (B, C * bins, frames) -> a causal conv to
`width` channels -> ConvNeXt blocks -> a strided conv that gathers `frames_per_latent` frames
into one latent frame -> (mu, logvar).
Decoder: latents -> one conv yielding `frames_per_latent` STFT frames' features per latent
frame -> ConvNeXt blocks -> LayerNorm -> a linear head to every bin's log-magnitude and phase
(B, C * 2 * bins, frames), which `IstftSynthesis` turns into audio.

Why: on real music the PQMF design learned the loudness envelope of its input but barely its
spectrum within a CPU budget (issue #12). A decoder that writes magnitudes directly gets the
spectral envelope from the first steps, as Vocos-style vocoders do; measured side by side on
the Wesnoth soundtrack (600 steps each, one thread, three unseen pieces), it followed the
input's loudness (correlation 0.77 against 0.54) and spectrum (0.24 against 0.05) better, at a
level 5 dB under the input's instead of 20 dB, with each step taking less time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from helius.config import StftModelConfig
from helius.models.base import variance_preserving_
from helius.nn.spectral import ConvNeXtBlock, schroeder_phases
from helius.nn.streaming import CachedConv1d

# Initialisation: see `initialise_stft`.
HEAD_SCALE = 0.1  # the head starts small: every bin near magnitude e^0 with a small phase
INITIAL_LOGVAR = -4.0  # posterior std 0.14 at first: z starts as the encoder's mean


class StftEncoder(nn.Module):
    """Log-magnitude frames (B, C * bins, F) -> (mu, logvar), each (B, latent_dim, F / k)."""

    def __init__(self, stft: StftModelConfig, rows: int, latent_dim: int, logvar_min: float):
        super().__init__()
        width, k = stft.width, stft.frames_per_latent
        self.logvar_min = logvar_min
        self.input = CachedConv1d(rows, width, 3, causal=True)
        self.blocks = nn.Sequential(*(ConvNeXtBlock(width) for _ in range(stft.encoder_blocks)))
        self.down = CachedConv1d(width, width, k, stride=k, causal=True)
        self.mu = CachedConv1d(width, latent_dim, 1, causal=True)
        self.logvar = CachedConv1d(width, latent_dim, 1, causal=True)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.down(self.blocks(self.input(features)))
        logvar = self.logvar_min + F.softplus(self.logvar(hidden) - self.logvar_min)
        return self.mu(hidden), logvar


class StftDecoder(nn.Module):
    """Latents (B, latent_dim, m) -> log-magnitude and phase rows (B, C * 2 * bins, m * k)."""

    def __init__(self, stft: StftModelConfig, out_rows: int, latent_dim: int) -> None:
        super().__init__()
        width = stft.width
        self.frames_per_latent = stft.frames_per_latent
        self.channels = out_rows // (2 * (stft.n_fft // 2 + 1))
        self.input = CachedConv1d(latent_dim, width * self.frames_per_latent, 3, causal=True)
        self.blocks = nn.Sequential(*(ConvNeXtBlock(width) for _ in range(stft.decoder_blocks)))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, out_rows)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.head_rows(self.blocks(unfold_frames(self.input(z), self.frames_per_latent)))

    def head_rows(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(hidden.transpose(1, 2))).transpose(1, 2)


def unfold_frames(hidden: torch.Tensor, k: int) -> torch.Tensor:
    """(B, width * k, m) -> (B, width, m * k): each latent frame's k STFT frames in order."""
    batch, rows, frames = hidden.size(0), hidden.size(1), hidden.size(2)
    grouped = hidden.reshape(batch, rows // k, k, frames)
    return grouped.permute(0, 1, 3, 2).reshape(batch, rows // k, frames * k)


def initialise_stft(
    encoder: StftEncoder, decoder: StftDecoder, integrated_phase: bool = False
) -> None:
    """Variance-preserving convs and linears with zero biases (as `wave_vae.initialise`), a
    narrow posterior, and a small head: the first outputs are every bin at about magnitude 1
    (near the level of music at -20 dBFS) with phases that follow z."""
    with torch.no_grad():
        for part in (encoder, decoder):
            for module in part.modules():
                variance_preserving_(module)
        nn.init.zeros_(encoder.logvar.weight)
        nn.init.constant_(encoder.logvar.bias, INITIAL_LOGVAR)
        decoder.head.weight.mul_(HEAD_SCALE)
        # Schroeder's phases: a flat spectrum whose frames have a low crest factor. With zero
        # phases every frame started as one sharp pulse, which the output's tanh clipped: loud
        # material then stayed 15 dB too quiet for hundreds of steps. Integrated phases start
        # from zero increments: the synthesis lays them on Schroeder's phases itself.
        bins = decoder.head.bias.numel() // decoder.channels // 2
        phase_bias = decoder.head.bias.view(decoder.channels, 2, bins)[:, 1]
        phase_bias.copy_(torch.zeros(bins) if integrated_phase else schroeder_phases(bins))
