"""Reconstruct audio through a trained VAE: encode to z = mu, decode, as the model hears it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from helius import metrics
from helius.audio import io
from helius.models.checkpoint import load_vae


@dataclass(frozen=True)
class Reconstruction:
    output: Path
    seconds: float
    mrstft: float
    si_sdr: float


@torch.no_grad()
def reconstruct(model: nn.Module, audio: np.ndarray) -> np.ndarray:
    """(channels, frames) at the model's rate -> its reconstruction, same shape.

    The wave VAE takes the whole file, padded to whole latent frames; the clip VAE takes it
    clip by clip (the last one zero-padded).
    """
    hop = int(model.hop_samples)
    frames = audio.shape[1]
    padded = -(-max(frames, 1) // hop) * hop
    x = torch.from_numpy(np.pad(audio, ((0, 0), (0, padded - frames))))[None]
    device = next(model.parameters()).device
    if getattr(model, "clip_samples", None):
        chunks = x.reshape(1, x.shape[1], -1, hop).permute(0, 2, 1, 3)[0]  # (clips, C, hop)
        y = torch.cat(
            [model.decode(model.encode(chunk[None].to(device))[0]) for chunk in chunks], dim=-1
        )
    else:
        y = model.decode(model.encode(x.to(device))[0])
    return y[0, :, :frames].float().cpu().numpy()


def reconstruct_file(
    vae_checkpoint: str | os.PathLike, input_path: str | os.PathLike, output_path: str | os.PathLike
) -> Reconstruction:
    """Load a VAE checkpoint, reconstruct one audio file and write it (atomically)."""
    model, config = load_vae(vae_checkpoint)
    audio, sample_rate = io.load(input_path, config.data.sample_rate, mono=config.data.mono)
    rebuilt = reconstruct(model, audio)
    output = io.save(output_path, rebuilt, sample_rate)
    original, copy = torch.from_numpy(audio), torch.from_numpy(rebuilt)
    distance = metrics.mrstft_distance(copy, original, fft_sizes=(2048, 1024, 512, 256, 128))
    return Reconstruction(
        output, audio.shape[1] / sample_rate, float(distance), float(metrics.si_sdr(copy, original))
    )
