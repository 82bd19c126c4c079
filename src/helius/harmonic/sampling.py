"""Sampling from a mel VAE: novel clips from the prior, interpolations between two patches, and
the spherical interpolation (slerp) they use.

Every clip goes latent -> `MelVAE.decode` -> log-mel patch -> a `MelInverter` (Griffin-Lim or the
learned vocoder) -> audio. A clip is (1, (frames - 1) x hop) float32, the audio the patch's
frames describe (`MelInverter.samples`). Each patch is inverted on its own: Griffin-Lim draws its
starting phases for the whole batch at once, so inverting a batch would make a clip depend on
which others share the call.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from helius.errors import ConfigError
from helius.explore.interpolate import morph_path
from helius.explore.interpolate import slerp as slerp_columns
from helius.harmonic.griffin_lim import GriffinLim
from helius.harmonic.mel_vae import MelVAE
from helius.harmonic.vocoder import MelInverter

__all__ = [
    "INTERPOLATION_METHODS",
    "check_inverter",
    "default_inverter",
    "encode_audio",
    "generate",
    "interpolate",
    "invert",
    "prior_latents",
    "slerp",
]

INTERPOLATION_METHODS = ("linear", "slerp")


def slerp(
    a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor, t: float
) -> np.ndarray | torch.Tensor:
    """Spherical interpolation of vectors (D,) from a (t = 0) to b (t = 1) along the great arc:
    sin((1 - t) w) / sin(w) a + sin(t w) / sin(w) b, w the angle between them. Unit vectors stay
    unit vectors and vectors of equal norm keep it (a path between two prior draws stays on the
    shell where N(0, I) has its mass). Nearly parallel vectors (angle < 1e-4 rad), opposite or
    zero ones fall back to the linear blend. Returns the type of `a` (array or tensor); it wraps
    `helius.explore.interpolate.slerp`, which also takes (D, frames) trajectories."""
    if isinstance(a, torch.Tensor):
        left = a.to(torch.float64)
        mixed = slerp_columns(left, torch.as_tensor(b).to(left), float(t))
        return mixed.to(a.dtype if a.is_floating_point() else torch.float64)
    array = np.asarray(a)
    left = torch.from_numpy(array.astype(np.float64))
    mixed = slerp_columns(left, torch.from_numpy(np.asarray(b, dtype=np.float64)), float(t))
    dtype = array.dtype if np.issubdtype(array.dtype, np.floating) else np.float64
    return mixed.numpy().astype(dtype, copy=False)


def default_inverter(model: MelVAE, iterations: int = 32, seed: int = 0) -> GriffinLim:
    """Griffin-Lim over the model's own mel features (no training needed)."""
    return GriffinLim(model.mel, iterations=iterations, seed=seed)


def check_inverter(model: MelVAE, inverter: MelInverter) -> None:
    """Raise ConfigError unless `inverter` inverts the mel features `model` works on."""
    ours, theirs = model.mel, inverter.mel
    mine = (ours.sample_rate, ours.n_fft, ours.hop_length, ours.n_mels)
    other = (theirs.sample_rate, theirs.n_fft, theirs.hop_length, theirs.n_mels)
    if mine != other:
        raise ConfigError(
            "the inverter's mel features (sample rate, n_fft, hop, n_mels) = "
            f"{other} differ from the mel VAE's {mine}; use a vocoder trained on the same "
            "features, or Griffin-Lim over the model's own (sampling.default_inverter)"
        )


def _device(module: torch.nn.Module) -> torch.device:
    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device
    return torch.device("cpu")


@torch.no_grad()
def invert(log_mel: torch.Tensor, inverter: MelInverter) -> list[np.ndarray]:
    """(B, n_mels, frames) log-mel -> B clips (1, samples) float32, each inverted on its own."""
    device = _device(inverter)
    clips = []
    for patch in log_mel:
        audio = inverter(patch[None].to(device))[0]
        clips.append(audio.detach().cpu().numpy().astype(np.float32, copy=False))
    return clips


def prior_latents(model: MelVAE, n: int, seed: int, temperature: float = 1.0) -> torch.Tensor:
    """(n, latent_dim) draws of N(0, temperature^2 I) from a generator seeded with `seed`."""
    if n < 1:
        raise ValueError(f"need n >= 1 clips, got {n}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(n, model.latent_dim, generator=generator) * temperature
    return z.to(_device(model))


@torch.no_grad()
def generate(
    model: MelVAE,
    n: int,
    inverter: MelInverter | None = None,
    seed: int = 0,
    temperature: float = 1.0,
) -> list[np.ndarray]:
    """`n` novel clips: z ~ N(0, temperature^2 I), decoded and inverted (`inverter` None:
    `default_inverter(model)`). Same model, seed and inverter, same clips."""
    inverter = default_inverter(model) if inverter is None else inverter
    check_inverter(model, inverter)
    return invert(model.decode(prior_latents(model, n, seed, temperature)), inverter)


def _as_batch(audio: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(T,), (C, T) or (1, C, T) audio -> (1, C, T) float32 tensor."""
    tensor = torch.as_tensor(audio, dtype=torch.float32)
    if tensor.ndim == 1:
        tensor = tensor[None]
    if tensor.ndim == 2:
        tensor = tensor[None]
    if tensor.ndim != 3 or tensor.shape[0] != 1:
        raise ValueError(f"expected one clip, (T,) or (C, T), got shape {tuple(tensor.shape)}")
    return tensor


@torch.no_grad()
def encode_audio(model: MelVAE, audio: np.ndarray | torch.Tensor) -> torch.Tensor:
    """The posterior mean (latent_dim,) of one clip's patch (cropped or padded to a patch)."""
    batch = _as_batch(audio).to(_device(model))
    mu, _ = model.encode(model.features(batch))
    return mu[0]


@torch.no_grad()
def interpolate(
    model: MelVAE,
    audio_a: np.ndarray | torch.Tensor,
    audio_b: np.ndarray | torch.Tensor,
    steps: int,
    inverter: MelInverter | None = None,
    method: Literal["linear", "slerp"] = "slerp",
) -> list[np.ndarray]:
    """`steps` clips (ends included) from patch a to patch b: both are encoded to their
    posterior means, which are blended (`method`), decoded and inverted. The first clip is
    exactly decoding a's mean and the last b's."""
    if method not in INTERPOLATION_METHODS:
        raise ValueError(
            f"unknown interpolation {method!r}; use one of {', '.join(INTERPOLATION_METHODS)}"
        )
    inverter = default_inverter(model) if inverter is None else inverter
    check_inverter(model, inverter)
    path = morph_path(encode_audio(model, audio_a), encode_audio(model, audio_b), steps, method)
    return invert(model.decode(path), inverter)
