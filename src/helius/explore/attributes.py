"""Attribute directions: latent directions that make a sound brighter, noisier or louder.

An attribute is measured on audio (spectral centroid, spectral flatness, RMS level); a
direction is found either by regressing the measured attribute of decoded prior samples on
their latents, or from labelled examples (mean of the positives minus mean of the negatives).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from helius.audio.features import rms_db, spectral_centroid_hz, spectral_flatness

__all__ = [
    "ATTRIBUTES",
    "direction_from_examples",
    "directions_from_samples",
    "measure",
    "move",
]

ATTRIBUTES = ("brightness", "noisiness", "loudness")


def measure(audio: np.ndarray, sample_rate: int) -> dict[str, float]:
    """{"brightness": spectral centroid in Hz, "noisiness": spectral flatness (0..1),
    "loudness": RMS in dB re full scale} of mono (T,) or (C, T) audio (channels averaged)."""
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim == 2:
        audio = audio.mean(axis=0)
    if audio.ndim != 1:
        raise ValueError(f"expected audio (T,) or (channels, T), got shape {audio.shape}")
    return {
        "brightness": spectral_centroid_hz(audio, sample_rate),
        "noisiness": spectral_flatness(audio),
        "loudness": rms_db(audio),
    }


def _decode_all(session: Any, latents: torch.Tensor) -> list[np.ndarray]:
    decode_batch = getattr(session, "decode_batch", None)
    if decode_batch is not None:
        return list(decode_batch(latents))
    return [session.decode(latent) for latent in latents]


def directions_from_samples(session: Any, n: int = 64, seed: int = 0) -> dict[str, torch.Tensor]:
    """Unit directions (D,) per attribute, regressed from n decoded prior samples.

    Latents z ~ N(0, I) (a wave VAE holds each constant over its frames, see
    `ExplorerSession.decode`) are decoded and measured; each attribute, standardised, is fitted
    by least squares as a linear function of the standardised latents. The fitted gradient,
    mapped back to latent units, points to where the attribute grows. An attribute that does
    not vary at all over the samples (e.g. a model that decodes silence) gets a zero vector.
    Use n well above latent_dim: with n <= D the fit is underdetermined.
    """
    if n < 2:
        raise ValueError(f"need at least 2 samples to fit a direction, got n={n}")
    latents = session.sample_prior(n, seed=seed).to(torch.float64)
    measured = [measure(audio, session.sample_rate) for audio in _decode_all(session, latents)]
    z = latents.numpy()
    z_std = z.std(axis=0)
    z_std[z_std == 0] = 1.0
    design = np.concatenate([(z - z.mean(axis=0)) / z_std, np.ones((n, 1))], axis=1)
    directions = {}
    for name in ATTRIBUTES:
        values = np.array([row[name] for row in measured], dtype=np.float64)
        spread = values.std()
        if not np.isfinite(spread) or spread == 0.0:
            directions[name] = torch.zeros(z.shape[1], dtype=torch.float32)
            continue
        target = (values - values.mean()) / spread
        coefficients = np.linalg.lstsq(design, target, rcond=None)[0][:-1]
        gradient = coefficients / z_std  # d(attribute)/dz in latent units, up to a scale
        directions[name] = _unit(torch.from_numpy(gradient).float())
    return directions


def direction_from_examples(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """Unit direction (D,) from the negatives' mean to the positives' mean (each (n, D))."""
    positive, negative = torch.as_tensor(positive), torch.as_tensor(negative)
    if positive.ndim != 2 or negative.ndim != 2 or positive.shape[1] != negative.shape[1]:
        raise ValueError(
            "need examples (P, D) and (N, D) with the same D, got "
            f"{tuple(positive.shape)} and {tuple(negative.shape)}"
        )
    if len(positive) == 0 or len(negative) == 0:
        raise ValueError("need at least one positive and one negative example")
    difference = positive.double().mean(0) - negative.double().mean(0)
    if float(difference.norm()) < 1e-12:
        raise ValueError("the positive and negative examples have the same mean: no direction")
    return _unit(difference.float())


def move(latent: torch.Tensor, direction: torch.Tensor, amount: float) -> torch.Tensor:
    """latent + amount * direction; a trajectory (D, frames) moves every frame alike."""
    direction = torch.as_tensor(direction, dtype=latent.dtype, device=latent.device)
    if latent.ndim == 2:
        direction = direction[:, None]
    return latent + amount * direction


def _unit(vector: torch.Tensor) -> torch.Tensor:
    norm = vector.norm()
    if not torch.isfinite(norm) or float(norm) == 0.0:
        return torch.zeros_like(vector)
    return vector / norm
