"""The streaming waveform VAE: PQMF sub-bands, a strided conv encoder to a latent sequence and a
mirrored decoder with amplitude modulation, a filtered-noise branch and a tanh headroom; or, with
`model.wave.transform: stft`, causal STFT frames in and an inverse-STFT head out (`wave_stft.py`).

Shapes: audio (B, C, T) with T a multiple of `hop_samples` (= bands * prod(ratios)); latents
(B, latent_dim, T / hop_samples). Lengths that are not a multiple raise ValueError: pad or crop
the audio first (padding silently would shift frames against the caller's expectations).

Streaming: `model.streaming(True)` switches this instance's cached layers to chunk-by-chunk
mode; then `encode` and `decode` accept consecutive chunks (multiples of `hop_samples` /
whole latent frames) and produce exactly what one offline call on the whole signal gives.
Only causal models (`model.wave.causal: true`) can stream; others raise ConfigError. The noise
branch reads one noise sequence however the signal is cut, so under the same seed chunked
output equals offline output with it on too. `helius export` and `helius stream` script these
same layers with streaming on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from helius.config import ModelConfig, WaveModelConfig
from helius.errors import ConfigError
from helius.models.base import VAEOutput, frozen_if, reparameterize, variance_preserving_
from helius.models.wave_stft import StftDecoder, StftEncoder, initialise_stft
from helius.nn.blocks import DownStage, FilteredNoise, ResidualUnit, UpStage, make_activation
from helius.nn.pqmf import PQMF
from helius.nn.spectral import IstftSynthesis, StftAnalysis
from helius.nn.streaming import (
    CachedConv1d,
    is_streaming,
    reset_streaming_state,
    set_streaming,
)

# Channels double at every stage up to this multiple of `capacity`: the deepest stages run at
# a few Hz, so wider layers there cost parameters but little compute.
MAX_CHANNEL_MULTIPLIER = 4
IO_KERNEL = 7
MAX_FIELD_FRAMES = 512  # receptive-field probes stop growing here


class ReceptiveField(NamedTuple):
    """Receptive fields measured by autograd."""

    encode_samples: int  # audio samples that influence one latent frame
    encode_lookahead_samples: int  # of those, how many lie after the frame's own hop
    decode_frames: int  # latent frames that influence one output sample
    decode_lookahead_frames: int  # of those, how many come after the sample's own frame
    decode_samples: int  # the audio those frames stand for (decode_frames * hop_samples)


def stage_channels(capacity: int, stages: int) -> list[int]:
    """Channels before each stage and after the last: capacity, 2x, 4x ... capped."""
    cap = capacity * MAX_CHANNEL_MULTIPLIER
    return [min(capacity * 2**index, cap) for index in range(stages + 1)]


class WaveEncoder(nn.Module):
    """Sub-bands (B, C * bands, F) -> (mu, logvar), each (B, latent_dim, F / prod(ratios))."""

    def __init__(self, wave: WaveModelConfig, in_rows: int, latent_dim: int) -> None:
        super().__init__()
        widths = stage_channels(wave.capacity, len(wave.ratios))
        causal = wave.causal
        self.logvar_min = wave.logvar_min
        self.input = CachedConv1d(in_rows, widths[0], IO_KERNEL, causal=causal)
        self.stages = nn.Sequential(
            *(
                DownStage(widths[i], widths[i + 1], ratio, wave.dilations, wave.activation, causal)
                for i, ratio in enumerate(wave.ratios)
            )
        )
        self.activation = make_activation(wave.activation, widths[-1])
        self.mu = CachedConv1d(widths[-1], latent_dim, 3, causal=causal)
        self.logvar = CachedConv1d(widths[-1], latent_dim, 3, causal=causal)

    def forward(self, bands: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.activation(self.stages(self.input(bands)))
        raw_logvar = self.logvar(features)
        # A smooth floor: near logvar_min the softplus flattens instead of clipping gradients.
        logvar = self.logvar_min + F.softplus(raw_logvar - self.logvar_min)
        return self.mu(features), logvar


class WaveDecoder(nn.Module):
    """Latents (B, latent_dim, frames) -> sub-bands (B, C * bands, frames * prod(ratios))."""

    def __init__(self, wave: WaveModelConfig, out_rows: int, latent_dim: int) -> None:
        super().__init__()
        widths = stage_channels(wave.capacity, len(wave.ratios))
        causal = wave.causal
        self.out_rows = out_rows
        self.amplitude_modulation = wave.amplitude_modulation
        self.input = CachedConv1d(latent_dim, widths[-1], 3, causal=causal)
        self.stages = nn.Sequential(
            *(
                UpStage(widths[i + 1], widths[i], ratio, wave.dilations, wave.activation, causal)
                for i, ratio in reversed(list(enumerate(wave.ratios)))
            )
        )
        self.activation = make_activation(wave.activation, widths[0])
        # One conv yields the waveform and, with amplitude modulation, its envelope logits.
        heads = 2 if wave.amplitude_modulation else 1
        self.output = CachedConv1d(widths[0], heads * out_rows, IO_KERNEL, causal=causal)
        self.noise = FilteredNoise(widths[0], out_rows, causal) if wave.noise_branch else None

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        features = self.activation(self.stages(self.input(z)))
        output = self.output(features)
        if self.amplitude_modulation:
            waveform, envelope = output.split(self.out_rows, dim=1)
            output = waveform * torch.sigmoid(envelope)
        if self.noise is not None:
            output = output + self.noise(features)
        return output


class WaveVAE(nn.Module):
    """PQMF -> encoder -> latent sequence -> decoder -> PQMF synthesis -> headroom * tanh, or
    with `model.wave.transform: stft`, STFT log-magnitudes -> encoder -> latent sequence ->
    decoder -> inverse STFT -> headroom * tanh (`wave_stft.py`)."""

    def __init__(self, config: ModelConfig, sample_rate: int, channels: int = 1) -> None:
        super().__init__()
        if sample_rate <= 0 or channels <= 0:
            raise ValueError(
                f"sample_rate and channels must be positive: {sample_rate}, {channels}"
            )
        wave = config.wave
        self.config = config
        self.sample_rate = sample_rate
        self.channels = channels
        self.latent_dim = config.latent_dim
        self.causal = wave.causal
        self.headroom = wave.headroom
        self.transform = wave.transform
        self.encoder: WaveEncoder | StftEncoder
        self.decoder: WaveDecoder | StftDecoder
        if wave.transform == "stft":
            stft, bins = wave.stft, wave.stft.n_fft // 2 + 1
            self.causal = True  # STFT frames and ConvNeXt blocks are causal by construction
            self.pqmf = None
            self.analysis = StftAnalysis(stft.n_fft, stft.hop)
            integrated = stft.phase == "integrated"
            self.synthesis = IstftSynthesis(
                stft.n_fft, stft.hop, channels, stft.phase_advance, integrated
            )
            self.encoder = StftEncoder(stft, channels * bins, config.latent_dim, wave.logvar_min)
            self.decoder = StftDecoder(stft, channels * 2 * bins, config.latent_dim)
            initialise_stft(self.encoder, self.decoder, integrated)
        else:
            self.pqmf = PQMF(wave.bands, causal=wave.causal)
            rows = channels * wave.bands
            self.encoder = WaveEncoder(wave, rows, config.latent_dim)
            self.decoder = WaveDecoder(wave, rows, config.latent_dim)
            initialise(self)
        self._hop_samples = wave.hop_samples
        # Adversarial fine-tuning may hold the encoder (and the PQMF analysis) fixed.
        self.encoder_frozen = False

    # ---- sizes and timing -------------------------------------------------------------------

    @property
    def hop_samples(self) -> int:
        """Audio samples per latent frame (the compression ratio)."""
        return self._hop_samples

    @property
    def can_stream(self) -> bool:
        return self.causal

    @property
    def output_delay_samples(self) -> int:
        """Constant lag of the reconstruction behind its input: the causal PQMF's delay (or the
        STFT's n_fft - hop), else 0.

        A causal model cannot undo this lag, so waveform losses should compare
        `audio[..., d:]` with `x[..., :-d]` (spectral magnitude losses barely notice it).
        """
        if self.pqmf is None:
            return self.synthesis.delay_samples
        return self.pqmf.delay_samples

    @property
    def latency_samples(self) -> int:
        """Algorithmic latency when streaming: one hop of buffering plus the PQMF delay."""
        self._require_causal("has no streaming latency")
        return self.hop_samples + self.output_delay_samples

    # ---- the model --------------------------------------------------------------------------

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Audio (B, C, T) -> (mu, logvar), each (B, latent_dim, T / hop_samples)."""
        self._check_audio(x)
        if self.pqmf is None:
            return self.encoder(self.analysis(x))
        return self.encoder(self.pqmf.analysis(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents (B, latent_dim, frames) -> audio (B, C, frames * hop_samples) in ±headroom."""
        if z.dim() != 3 or z.shape[1] != self.latent_dim:
            raise ValueError(
                f"decode expects latents (batch, {self.latent_dim}, frames), got {tuple(z.shape)}"
            )
        if self.pqmf is None:
            audio = self.synthesis(self.decoder(z))
        else:
            audio = self.pqmf.synthesis(self.decoder(z))
        return self.headroom * torch.tanh(audio)

    def forward(self, x: torch.Tensor, step: int | None = None) -> VAEOutput:
        """Encode, sample z (training) or take mu (eval), decode. `step` is unused here; it
        keeps the trainer's call the same for every model kind."""
        del step
        with frozen_if(self.encoder_frozen):
            mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar, sample=self.training and self.config.sample_posterior)
        return VAEOutput(audio=self.decode(z), mu=mu, logvar=logvar, z=z)

    @torch.no_grad()
    def calibrate(self, audio: torch.Tensor) -> None:
        """Spectral design: start the decoder at the average log-magnitude spectrum of `audio`
        (B, C, T), some training segments. The head's bias sets each bin's starting level, and
        Adam moves a bias by about the learning rate per step: from a flat start, music 20 dB
        louder or quieter than the init took thousands of steps to reach its level. z still
        decides everything else (the head's weights are untouched). The PQMF design has
        nothing to calibrate."""
        if self.is_streaming:
            raise ValueError("calibrate with streaming off (streaming(False))")
        if self.pqmf is None and audio.numel():
            level = self.decoder.head.bias.view(self.channels, 2, -1)[:, 0]
            audio = audio.to(level.device)
            level.copy_(self.analysis(audio).mean(dim=(0, 2)).reshape(self.channels, -1))
            # One correction for what the mean of logs and overlap-add leave out of the level.
            output = self.decode(self.encode(audio)[0])
            ratio = audio.square().mean().sqrt() / output.square().mean().sqrt().clamp_min(1e-6)
            level.add_(ratio.log().clamp(-CALIBRATION_MAX_LOG_GAIN, CALIBRATION_MAX_LOG_GAIN))

    # ---- streaming --------------------------------------------------------------------------

    def streaming(self, enabled: bool = True) -> WaveVAE:
        """Switch chunk-by-chunk mode on or off for this instance (state starts empty)."""
        if enabled:
            self._require_causal("cannot stream exactly")
        set_streaming(self, enabled)
        return self

    def reset_streaming_state(self) -> None:
        """Forget cached context so the next chunk starts a new signal."""
        reset_streaming_state(self)

    @property
    def is_streaming(self) -> bool:
        return is_streaming(self)

    # ---- analysis ---------------------------------------------------------------------------

    def receptive_field_samples(self) -> ReceptiveField:
        """Receptive fields of encode and decode, measured by autograd on random input.

        The gradient of one latent frame (encode) or one output sample (decode) with respect to
        the input is nonzero exactly where the input can influence it; its span is the field.
        Parameters get no gradients; the model must not be streaming.
        """
        if self.is_streaming:
            raise ValueError("measure the receptive field with streaming off (streaming(False))")
        device = next(self.parameters()).device
        hop = self.hop_samples

        def encode_probe(frames: int) -> torch.Tensor:
            audio = torch.randn(1, self.channels, frames * hop, device=device).requires_grad_()
            mu, _ = self.encode(audio)
            return torch.autograd.grad(mu[0, :, frames // 2].sum(), audio)[0]

        def decode_probe(frames: int) -> torch.Tensor:
            z = torch.randn(1, self.latent_dim, frames, device=device).requires_grad_()
            sample = (frames // 2) * hop + hop // 2
            return torch.autograd.grad(self.decode(z)[0, :, sample].sum(), z)[0]

        with torch.enable_grad():
            encode_first, encode_last, encode_centre = _probe_extent(encode_probe)
            decode_first, decode_last, decode_centre = _probe_extent(decode_probe)
        decode_frames = decode_last - decode_first + 1
        return ReceptiveField(
            encode_samples=encode_last - encode_first + 1,
            encode_lookahead_samples=max(encode_last - ((encode_centre + 1) * hop - 1), 0),
            decode_frames=decode_frames,
            decode_lookahead_frames=max(decode_last - decode_centre, 0),
            decode_samples=decode_frames * hop,
        )

    # ---- checks -----------------------------------------------------------------------------

    def _check_audio(self, x: torch.Tensor) -> None:
        if x.dim() != 3 or x.shape[1] != self.channels:
            raise ValueError(
                f"expected audio (batch, {self.channels} channels, samples), got {tuple(x.shape)}"
            )
        if x.shape[-1] % self.hop_samples:
            raise ValueError(
                f"audio length {x.shape[-1]} is not a multiple of hop_samples "
                f"({self.hop_samples} = bands x prod(ratios)); pad or crop it to "
                f"{x.shape[-1] // self.hop_samples * self.hop_samples} or "
                f"{-(-x.shape[-1] // self.hop_samples) * self.hop_samples} samples"
            )

    def _require_causal(self, what: str) -> None:
        if not self.causal:
            raise ConfigError(
                f"this wave VAE is non-causal (model.wave.causal: false) and {what}: its "
                "layers look ahead of the current chunk. Train a model with "
                "model.wave.causal: true for streaming and live use."
            )


# At most e^3 (26 dB) of level correction in `calibrate`: enough for any real recording.
CALIBRATION_MAX_LOG_GAIN = 3.0

# Initialisation (see `initialise`).
ENCODER_INPUT_GAIN = 30.0  # music near -25 dBFS RMS has sub-bands near -37 dBFS: ~unit scale
RESIDUAL_BRANCH_SCALE = 0.1  # residual units start near identity, so depth does not compound
OUTPUT_SCALE = 0.1  # the first reconstructions come out near the input's level
INITIAL_LOGVAR = -4.0  # posterior std 0.14 at first: z starts as the encoder's mean, not noise


def initialise(model: WaveVAE) -> None:
    """Start the wave VAE where the latent decides the output.

    PyTorch's default conv init shrinks the signal at every layer and gives every conv a
    random bias. In a deep decoder those biases alone make a sound: constant sub-band signals
    that PQMF synthesis turns into steady tones (a drone of horizontal bands), 40 dB louder
    than anything the latent changes, while the encoder's mean moves by 1 % of its noise. The
    first thousand steps then refine the drone, and the latent is never used (posterior
    collapse; issue #12). Here every conv is variance-preserving (normal, std 1/sqrt(fan_in))
    with a zero bias, residual branches start small, the encoder's input is scaled so that
    real music gives a latent of unit scale, the posterior starts narrow, and the decoder's
    output conv starts small: the output is then a function of z alone, at a level near the
    input's. The noise branch's gain starts half open (a zero logit) and follows z like the
    rest: measured on real music, that beat both no noise branch and a nearly closed gain.
    """
    with torch.no_grad():
        for part in (model.encoder, model.decoder):
            for module in part.modules():
                variance_preserving_(module)
            for module in part.modules():
                if isinstance(module, ResidualUnit):
                    module.block[-1].weight.mul_(RESIDUAL_BRANCH_SCALE)
        model.encoder.input.weight.mul_(ENCODER_INPUT_GAIN)
        nn.init.zeros_(model.encoder.logvar.weight)
        nn.init.constant_(model.encoder.logvar.bias, INITIAL_LOGVAR)
        model.decoder.output.weight.mul_(OUTPUT_SCALE)


def _probe_extent(probe: Callable[[int], torch.Tensor]) -> tuple[int, int, int]:
    """(first, last) nonzero time index of `probe(frames)`'s gradient and the probed frame.

    Starts at 8 latent frames and doubles until the nonzero span stays clear of both ends, so
    zero padding at the edges cannot cut the field short.
    """
    frames = 8
    while True:
        gradient = probe(frames)
        nonzero = (gradient.abs().sum(dim=(0, 1)) > 0).nonzero().flatten()
        if nonzero.numel() == 0:
            return 0, -1, frames // 2  # no influence at all: an empty span
        first, last = int(nonzero[0]), int(nonzero[-1])
        inside = first > 0 and last < gradient.shape[-1] - 1
        if inside or frames >= MAX_FIELD_FRAMES:
            return first, last, frames // 2
        frames *= 2
