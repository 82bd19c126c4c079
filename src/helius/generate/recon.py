"""Reconstruct audio through a trained VAE: encode to z = mu, decode, as the model hears it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr
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
    vae_checkpoint: str | os.PathLike,
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    sample_rate: int | None = None,
) -> Reconstruction:
    """Load a VAE checkpoint, reconstruct one audio file and write it (atomically).

    The output keeps the input's channel layout and, unless `sample_rate` says otherwise, its
    sample rate, so it lines up with the input in any editor: the audio is resampled to the
    model's rate, each channel goes through a mono model on its own (a model of the file's own
    channel count takes them together), and the result is resampled back. The distances are
    measured at the model's rate, where the model works.
    """
    model, config = load_vae(vae_checkpoint)
    source = io.info(input_path)
    model_rate = config.data.sample_rate
    out_rate = sample_rate or source.sample_rate
    if out_rate <= 0:
        raise ValueError(f"--sample_rate must be positive, got {out_rate}")
    audio, _ = io.load(input_path, model_rate, mono=False)
    rebuilt = _reconstruct_layout(model, audio)
    output = io.save(output_path, _resample(rebuilt, model_rate, out_rate), out_rate)
    original, copy = torch.from_numpy(audio), torch.from_numpy(rebuilt)
    distance = metrics.mrstft_distance(copy, original, fft_sizes=(2048, 1024, 512, 256, 128))
    return Reconstruction(
        output, audio.shape[1] / model_rate, float(distance), float(metrics.si_sdr(copy, original))
    )


def _reconstruct_layout(model: nn.Module, audio: np.ndarray) -> np.ndarray:
    """Reconstruct (channels, frames) keeping its channel count, whatever the model's."""
    model_channels = int(getattr(model, "channels", 1))
    if audio.shape[0] == model_channels:
        return reconstruct(model, audio)
    if model_channels == 1:
        return np.concatenate([reconstruct(model, channel[None]) for channel in audio])
    # A multichannel model and a file of another layout: feed it the mixdown, spread back.
    mix = np.repeat(audio.mean(axis=0, keepdims=True), model_channels, axis=0)
    return np.repeat(reconstruct(model, mix).mean(axis=0, keepdims=True), len(audio), axis=0)


def _resample(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    if rate == target:
        return audio
    return soxr.resample(audio.T, rate, target, quality="HQ").T.astype(np.float32)
