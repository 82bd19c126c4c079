"""Audio out of a mel VAE: the checkpoint loaded, and the inverter its log-mel goes through (a
trained vocoder whose mel settings match, or fast Griffin-Lim over the model's own mel)."""

from __future__ import annotations

from pathlib import Path

import torch

from helius.harmonic.mel_vae import MelVAE
from helius.harmonic.vocoder import MelInverter
from helius.models.checkpoint import CheckpointError, load_model


def load_mel_vae(path: str | Path, device: str | torch.device = "cpu") -> MelVAE:
    """A trained mel VAE (eval mode) from its checkpoint alone."""
    model, _ = load_model(path, "mel_vae", map_location=device)
    return model


def inverter_for(
    model: MelVAE, vocoder_path: str | Path | None = None, iterations: int = 64
) -> MelInverter:
    """The learned vocoder when given (its mel settings must be the mel VAE's), else fast
    Griffin-Lim over the model's own mel."""
    if vocoder_path is None:
        from helius.harmonic.griffin_lim import GriffinLim

        return GriffinLim(model.mel, iterations=iterations)
    vocoder, _ = load_model(vocoder_path, "vocoder", map_location=model.centres_hz.device)
    ours, theirs = model.mel, vocoder.mel
    keys = ("sample_rate", "n_fft", "hop_length", "n_mels")
    differ = [k for k in keys if getattr(ours, k) != getattr(theirs, k)]
    if not differ and not torch.equal(ours.filters, theirs.filters):
        differ = ["f_min/f_max"]
    if differ:
        raise CheckpointError(
            f"vocoder {vocoder_path} was trained on other mel settings ({', '.join(differ)} "
            "differ from the mel VAE's); train a vocoder with the same data and model keys"
        )
    return vocoder
