"""The learned vocoder (model kind `vocoder`): log-mel frames -> waveform, Vocos-style.

A ConvNeXt backbone runs over the mel frames of `helius.nn.mel.LogMel` and a linear head gives,
for every frame, the log-magnitude and phase of each bin of an STFT whose inverse (centred
frames, Hann window) is the audio. Mel frame k describes the audio around sample k * hop, and
so does the head's frame k: F mel frames give (F - 1) * hop samples, so T samples (a multiple
of the hop) come back as T samples.

Three choices beyond Vocos, each a config switch, for a model that must learn in CPU minutes:
- the backbone reuses the wave VAE's causal `ConvNeXtBlock`; a causal stack fed `lookahead`
  future frames (the input is padded at its end and the first outputs dropped) is a centred
  one, and stays streamable;
- `phase: integrated`: the head gives each frame's phase increment beyond its bin's own
  rotation (summed over frames, as the wave VAE's spectral decoder does), so a steady input
  makes steady tones; absolute phases from a translation-invariant net cannot (measured on
  tiny tones/textures after 400 steps: mel distance 1.56 vs 1.68, MR-STFT 2.48 vs 2.95);
- `envelope_prior`: the head's log-magnitudes are a correction to those of the mel's clamped
  pseudo-inverse, so the untrained model already makes noise of the input's envelope (held-out
  mel distance at step 0: ~1.0 instead of ~4.2; after 300 steps ~0.85 instead of ~1.7).
`MelInverter` is what the vocoder and Griffin-Lim (`helius.harmonic.griffin_lim`) share: the
mel features they invert, `vocode`, and the filterbank's pseudo-inverse.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from helius.audio.features import mel_filterbank
from helius.harmonic.vocoder_config import VocoderConfig, VocoderModelConfig
from helius.nn.mel import LogMel
from helius.nn.spectral import (
    MAX_LOG_MAGNITUDE,
    ConvNeXtBlock,
    bin_advance,
    integrate_phase_rows,
    schroeder_phases,
)
from helius.nn.streaming import CachedConv1d

__all__ = ["MelInverter", "Vocoder", "build", "mel_to_linear", "pseudo_inverse"]

# The envelope prior's floor: a bin the mel's pseudo-inverse leaves at zero starts this quiet
# (-80 dB re a unit bin) instead of at minus infinity, so the network can still raise it.
ENVELOPE_FLOOR = 1e-4


def pseudo_inverse(filters: torch.Tensor) -> torch.Tensor:
    """(bins, n_mels) Moore-Penrose inverse of an (n_mels, bins) mel filterbank (in float64:
    the narrow low bands make it ill-conditioned in float32)."""
    return torch.linalg.pinv(torch.as_tensor(filters, dtype=torch.float64)).float()


def mel_to_linear(log_mel: torch.Tensor, inverse_filters: torch.Tensor) -> torch.Tensor:
    """(B, n_mels, F) log-mel -> (B, bins, F) linear magnitudes by the filterbank's
    pseudo-inverse `inverse_filters` (bins, n_mels), clamped at 0 (least squares, >= 0)."""
    return torch.matmul(inverse_filters, log_mel.exp()).clamp_min(0.0)


class MelInverter(nn.Module):
    """Turns `LogMel` features back into audio: `forward(mel)` (B, n_mels, F) -> (B, 1,
    (F - 1) * hop); `vocode` takes audio or mel."""

    def __init__(self, mel: LogMel) -> None:
        super().__init__()
        self.mel = mel

    @property
    def sample_rate(self) -> int:
        return self.mel.sample_rate

    @property
    def hop_length(self) -> int:
        return self.mel.hop_length

    def samples(self, frames: int) -> int:
        """Samples of audio that `frames` mel frames give."""
        return (frames - 1) * self.hop_length

    def check_mel(self, mel: torch.Tensor) -> None:
        if mel.ndim != 3 or mel.shape[1] != self.mel.n_mels or mel.shape[2] < 2:
            raise ValueError(
                f"expected log-mel frames of shape (B, {self.mel.n_mels}, frames >= 2), got "
                f"{tuple(mel.shape)}; pass audio to vocode() to compute them"
            )

    def is_mel(self, audio_or_mel: torch.Tensor) -> bool:
        """A (B, n_mels, F) tensor is mel frames; (T,), (B, T), (B, C, T) with C != n_mels is
        audio (audio never has as many channels as there are mel bands)."""
        return audio_or_mel.ndim == 3 and audio_or_mel.shape[1] == self.mel.n_mels

    @torch.no_grad()
    def vocode(self, audio_or_mel: torch.Tensor) -> torch.Tensor:
        """(B, 1, T) audio from mel frames, or from audio through its own mel frames (same
        length as the input; channels are averaged)."""
        if self.is_mel(audio_or_mel):
            return self(audio_or_mel)
        return self.resynthesize(audio_or_mel)

    def resynthesize(self, audio: torch.Tensor) -> torch.Tensor:
        """The audio of the mel frames of `audio` ((T,), (B, T) or (B, C, T)), as long as it:
        the input is padded with silence to whole hops first, and the output cut to length."""
        if audio.ndim == 1:
            audio = audio.unsqueeze(0)
        if audio.ndim not in (2, 3) or audio.shape[-1] < 1:
            raise ValueError(f"expected (T,), (B, T) or (B, C, T) audio, got {tuple(audio.shape)}")
        length = audio.shape[-1]
        padded = F.pad(audio, (0, -length % self.hop_length))
        return self(self.mel(padded))[..., :length]


class Vocoder(MelInverter):
    """Log-mel frames -> audio: causal ConvNeXt backbone with lookahead, inverse-STFT head."""

    def __init__(self, config: VocoderModelConfig, sample_rate: int) -> None:
        super().__init__(
            LogMel(
                sample_rate,
                config.n_fft,
                config.hop_length,
                config.n_mels,
                f_min=config.f_min,
                f_max=config.f_max,
            )
        )
        self.lookahead = config.lookahead
        self.head_n_fft = config.head_n_fft
        self.head_hop = config.synthesis_hop
        self.head_frames = config.hop_length // self.head_hop  # head frames per mel frame
        self.embed = CachedConv1d(config.n_mels, config.width, config.kernel, causal=True)
        self.embed_norm = nn.LayerNorm(config.width)
        self.backbone = nn.Sequential(
            *(
                ConvNeXtBlock(config.width, config.kernel, config.expansion)
                for _ in range(config.blocks)
            )
        )
        self.final_norm = nn.LayerNorm(config.width)
        self.bins = config.head_n_fft // 2 + 1
        self.head = nn.Linear(config.width, self.head_frames * 2 * self.bins)
        self.register_buffer("window", torch.hann_window(config.head_n_fft), persistent=False)
        self.integrate_phase = config.phase == "integrated"
        self.register_buffer("phase_offset", schroeder_phases(self.bins), persistent=False)
        self.envelope_prior = config.envelope_prior
        filters = mel_filterbank(
            sample_rate, config.head_n_fft, config.n_mels, f_min=config.f_min, f_max=config.f_max
        )
        # A sinusoid's STFT magnitude grows with the window: the head's window sees it
        # head_n_fft / n_fft times as large as the mel analysis does.
        inverse = pseudo_inverse(filters) * (config.head_n_fft / config.n_fft)
        self.register_buffer("inverse_filters", inverse, persistent=False)

    def features(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, F) -> (B, F, width): frame k has seen frames up to k + lookahead."""
        x = F.pad(mel, (0, self.lookahead), mode="replicate")
        x = self.embed_norm(self.embed(x).transpose(1, 2)).transpose(1, 2)
        x = self.final_norm(self.backbone(x).transpose(1, 2))
        return x[:, self.lookahead :]

    def spectrum(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, bins, F * head_frames) complex STFT of the output."""
        batch, frames = mel.shape[0], mel.shape[2]
        # float32 from here: complex tensors and the inverse STFT have no bf16 kernels (autocast)
        parts = self.head(self.features(mel)).float()
        parts = parts.reshape(batch, frames * self.head_frames, -1)
        rows = parts.transpose(1, 2)  # (B, 2 * bins, frames): log-magnitudes, then phases
        if self.integrate_phase:
            start = rows.new_zeros(batch, self.bins)
            rows, _ = integrate_phase_rows(rows, 1, start, self.phase_offset)
        log_magnitude, phase = rows.split(self.bins, dim=1)
        if self.envelope_prior:
            envelope = mel_to_linear(mel, self.inverse_filters).clamp_min(ENVELOPE_FLOOR).log()
            log_magnitude = log_magnitude + envelope.repeat_interleave(self.head_frames, dim=2)
        if self.integrate_phase:
            steps = self.head_n_fft // self.head_hop
            phase = phase + bin_advance(self.bins, 0, phase.shape[2], steps).to(phase)
        magnitude = log_magnitude.clamp(max=MAX_LOG_MAGNITUDE).exp()
        return torch.complex(magnitude * torch.cos(phase), magnitude * torch.sin(phase))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        self.check_mel(mel)
        audio = torch.istft(
            self.spectrum(mel.float()),
            self.head_n_fft,
            self.head_hop,
            window=self.window,
            center=True,
            length=self.samples(mel.shape[2]),
        )
        return audio.unsqueeze(1)


def build(config: VocoderConfig) -> Vocoder:
    """The untrained vocoder a validated config describes (the rate is data.sample_rate)."""
    return Vocoder(config.model, config.data.sample_rate)
