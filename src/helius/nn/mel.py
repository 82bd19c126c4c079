"""Log-mel spectrograms in torch (no torchaudio): the features the mel VAE learns and the input
of the vocoder that turns them back into audio.

Frames are centred (torch.stft with reflect padding), so T samples give T // hop + 1 frames and
frame k describes the audio around sample k * hop. Magnitudes (not power) go through the Slaney
mel filters of `helius.audio.features.mel_filterbank` and then a natural log with a floor.
"""

from __future__ import annotations

import torch
from torch import nn

from helius.audio.features import mel_filterbank

LOG_FLOOR = 1e-5  # magnitudes below this (about -100 dB) read as this


class LogMel(nn.Module):
    """(B, T) or (B, C, T) audio -> (B, n_mels, frames) log-mel magnitudes (channels averaged)."""

    def __init__(
        self,
        sample_rate: int = 22050,
        n_fft: int = 2048,
        hop_length: int = 512,
        n_mels: int = 128,
        f_min: float = 0.0,
        f_max: float | None = None,
    ) -> None:
        super().__init__()
        if hop_length < 1 or hop_length > n_fft:
            raise ValueError(f"hop_length must be in 1..n_fft ({n_fft}); got {hop_length}")
        self.sample_rate, self.n_fft, self.hop_length, self.n_mels = (
            sample_rate,
            n_fft,
            hop_length,
            n_mels,
        )
        filters = mel_filterbank(sample_rate, n_fft, n_mels, f_min=f_min, f_max=f_max)
        self.register_buffer("filters", torch.as_tensor(filters, dtype=torch.float32), False)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def frames(self, samples: int) -> int:
        """Frames that `samples` samples of audio give."""
        return samples // self.hop_length + 1

    def magnitude(self, audio: torch.Tensor) -> torch.Tensor:
        """Linear mel magnitudes (B, n_mels, frames)."""
        if audio.ndim == 3:
            audio = audio.mean(dim=1)
        if audio.ndim != 2:
            raise ValueError(f"expected (B, T) or (B, C, T) audio, got shape {tuple(audio.shape)}")
        spectrum = torch.stft(
            audio.float(),
            self.n_fft,
            self.hop_length,
            window=self.window,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        ).abs()
        return torch.matmul(self.filters, spectrum)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.magnitude(audio).clamp_min(LOG_FLOOR).log()
