"""The mel-spectrogram VAE (model kind `mel_vae`): one latent vector per fixed-length log-mel
patch, as HarmonicVAE's manual describes, with its objective.

Patches are `segment_length` seconds of `helius.nn.mel.LogMel` frames (n_mels x frames). The
network sees them through a fixed affine map (`LOG_CENTRE`, `LOG_SCALE`: log magnitudes of
music lie roughly in [-11.5, 2], so the map puts them near [-2, 1]) and gives back log-mel.
Two architectures (`model.architecture`):
- `mlp`, the manual's: the flattened patch through dense layers of `hidden_dims`, mirrored in
  the decoder;
- `conv`: 2-D convolutions over (mel, time), each stage halving both (`conv_channels`), then
  one dense layer to the latent; the decoder mirrors it with transposed convolutions. The patch
  is padded at its top band and last frame to a multiple of 2^stages and cropped on the way out.

The objective (`MelVAE.loss`): a reconstruction term on log-mel (L1, MSE, or the masking-
weighted L1 of `helius.harmonic.psychoacoustic`, each a mean over the patch's bins), the
harmonicity term times its weight, and beta x the Gaussian KL divided by the bins of a patch.
That division keeps beta = 1 the ELBO's own balance (a summed per-bin error against the KL of
the whole vector): with a mean error and the whole KL, beta = 1 would weigh the KL thousands of
times too much (128 bands x 87 frames) and the posterior would collapse.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from helius.audio.features import hz_to_mel, mel_to_hz
from helius.harmonic.config import MelVAEConfig, MelVAEModelConfig, MelVAETrainConfig
from helius.harmonic.psychoacoustic import harmonicity_loss, masked_l1
from helius.losses import kl_per_dim
from helius.nn.mel import LogMel

__all__ = ["MelVAE", "build", "mel_centres_hz"]

LOG_CENTRE = -5.0
LOG_SCALE = 4.0


def mel_centres_hz(sample_rate: int, n_mels: int, f_min: float, f_max: float | None) -> np.ndarray:
    """Centre frequency of each mel band of `helius.audio.features.mel_filterbank`."""
    top = sample_rate / 2.0 if f_max is None else f_max
    edges = np.linspace(hz_to_mel(f_min), hz_to_mel(top), n_mels + 2)
    return mel_to_hz(edges)[1:-1]


def _mlp(widths: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for index, (width_in, width_out) in enumerate(itertools.pairwise(widths)):
        layers.append(nn.Linear(width_in, width_out))
        if index < len(widths) - 2:
            layers.append(nn.GELU())
    return nn.Sequential(*layers)


def _conv_stack(channels: list[int], transpose: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for index, (c_in, c_out) in enumerate(itertools.pairwise(channels)):
        if transpose:
            layers.append(nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1))
        else:
            layers.append(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1))
        if index < len(channels) - 2:
            layers.append(nn.GELU())
    return nn.Sequential(*layers)


class MelVAE(nn.Module):
    """(B, n_mels, frames) log-mel patches <-> (B, latent_dim) latent vectors."""

    def __init__(self, model: MelVAEModelConfig, sample_rate: int) -> None:
        super().__init__()
        self.config, self.sample_rate = model, sample_rate
        self.mel = LogMel(
            sample_rate, model.n_fft, model.hop_length, model.n_mels, model.f_min, model.f_max
        )
        centres = mel_centres_hz(sample_rate, model.n_mels, model.f_min, model.f_max)
        self.register_buffer("centres_hz", torch.as_tensor(centres, dtype=torch.float32), False)
        self.n_mels, self.frames = model.n_mels, model.patch_frames(sample_rate)
        self.bins = self.n_mels * self.frames
        self.latent_dim = model.latent_dim
        if model.architecture == "mlp":
            widths = [self.n_mels * self.frames, *model.hidden_dims]
            self.encoder = _mlp(widths)
            self.to_latent = nn.Linear(widths[-1], 2 * model.latent_dim)
            self.from_latent = nn.Linear(model.latent_dim, widths[-1])
            self.decoder = _mlp(widths[::-1])
        else:
            stages = len(model.conv_channels)
            multiple = 2**stages
            self.padded = (
                -(-self.n_mels // multiple) * multiple,
                -(-self.frames // multiple) * multiple,
            )
            self.bottom = (
                model.conv_channels[-1],
                self.padded[0] // multiple,
                self.padded[1] // multiple,
            )
            flat = int(np.prod(self.bottom))
            self.encoder = _conv_stack([1, *model.conv_channels], transpose=False)
            self.to_latent = nn.Linear(flat, 2 * model.latent_dim)
            self.from_latent = nn.Linear(model.latent_dim, flat)
            self.decoder = _conv_stack([*model.conv_channels[::-1], 1], transpose=True)

    def features(self, audio: torch.Tensor) -> torch.Tensor:
        """(B, T) or (B, C, T) audio -> (B, n_mels, frames) log-mel (cropped or padded)."""
        log_mel = self.mel(audio)
        if log_mel.shape[-1] < self.frames:
            log_mel = F.pad(
                log_mel, (0, self.frames - log_mel.shape[-1]), value=log_mel.min().item()
            )
        return log_mel[..., : self.frames]

    def _check(self, log_mel: torch.Tensor) -> None:
        if log_mel.ndim != 3 or tuple(log_mel.shape[1:]) != (self.n_mels, self.frames):
            raise ValueError(
                f"expected (B, {self.n_mels}, {self.frames}) log-mel patches (n_mels x frames of "
                f"{self.config.segment_length} s), got {tuple(log_mel.shape)}"
            )

    def encode(self, log_mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar), each (B, latent_dim)."""
        self._check(log_mel)
        x = (log_mel - LOG_CENTRE) / LOG_SCALE
        if self.config.architecture == "mlp":
            hidden = F.gelu(self.encoder(x.flatten(1)))
        else:
            pad = (0, self.padded[1] - self.frames, 0, self.padded[0] - self.n_mels)
            hidden = F.gelu(self.encoder(F.pad(x[:, None], pad, mode="replicate")).flatten(1))
        mu, logvar = self.to_latent(hidden).chunk(2, dim=1)
        return mu, logvar.clamp_min(self.config.logvar_min)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, latent_dim) -> (B, n_mels, frames) log-mel."""
        hidden = F.gelu(self.from_latent(z))
        if self.config.architecture == "mlp":
            x = self.decoder(hidden).view(-1, self.n_mels, self.frames)
        else:
            x = self.decoder(hidden.view(-1, *self.bottom))[:, 0, : self.n_mels, : self.frames]
        return x * LOG_SCALE + LOG_CENTRE

    def forward(
        self, log_mel: torch.Tensor, sample: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(reconstruction, mu, logvar); the posterior is sampled in training when `sample`."""
        mu, logvar = self.encode(log_mel)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if sample and self.training else mu
        return self.decode(z), mu, logvar

    def loss(
        self,
        log_mel: torch.Tensor,
        objective: MelVAETrainConfig,
        epoch: float,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(total, parts) of the objective on a batch of patches at `epoch` (beta annealing)."""
        rebuilt, mu, logvar = self(log_mel)
        if objective.reconstruction == "l1":
            reconstruction = (rebuilt - log_mel).abs().mean()
        elif objective.reconstruction == "mse":
            reconstruction = (rebuilt - log_mel).pow(2).mean()
        else:
            reconstruction = masked_l1(rebuilt, log_mel, self.centres_hz)
        kl = kl_per_dim(mu, logvar).sum()  # nats per latent vector
        beta = objective.beta(epoch)
        parts = {"reconstruction": reconstruction, "kl": kl}
        total = reconstruction + beta * kl / self.bins
        if objective.harmonicity_weight > 0:
            parts["harmonicity"] = harmonicity_loss(rebuilt, log_mel, self.centres_hz)
            total = total + objective.harmonicity_weight * parts["harmonicity"]
        return total, parts


def build(config: MelVAEConfig) -> MelVAE:
    """The registry's builder: a mel VAE for `config.model` at `config.data.sample_rate`."""
    return MelVAE(config.model, config.data.sample_rate)
