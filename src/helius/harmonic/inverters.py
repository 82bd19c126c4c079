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


class MelClipVAE(torch.nn.Module):
    """A mel VAE seen as a clip VAE, audio in and audio out: `encode` takes audio (N, C, T)
    to the posterior of its first patch (channels averaged), `decode` takes latents (N, D) to
    audio (N, 1, T) through the inverter. The latent explorer opens mel checkpoints through it.
    """

    def __init__(self, vae: MelVAE, inverter: MelInverter) -> None:
        super().__init__()
        self.vae, self.inverter = vae, inverter
        self.sample_rate = vae.sample_rate
        self.patch_samples = round(vae.config.segment_length * vae.sample_rate)

    def encode(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        audio = audio[..., : self.patch_samples]
        audio = torch.nn.functional.pad(audio, (0, self.patch_samples - audio.shape[-1]))
        return self.vae.encode(self.vae.features(audio))

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        log_mel = self.vae.decode(latents)
        audio = self.inverter(log_mel)  # (N, 1, (frames - 1) * hop): a little under a patch
        length = min(audio.shape[-1], self.patch_samples)
        return torch.nn.functional.pad(audio[..., :length], (0, self.patch_samples - length))


def load_mel_clip_vae(
    path: str | Path,
    device: str | torch.device = "cpu",
    vocoder_path: str | Path | None = None,
    iterations: int = 64,
) -> MelClipVAE:
    """`MelClipVAE` of a mel VAE checkpoint and its inverter (see `inverter_for`)."""
    model = load_mel_vae(path, device)
    return MelClipVAE(model, inverter_for(model, vocoder_path, iterations)).eval()
