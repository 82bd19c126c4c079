"""Waveform discriminators for adversarial fine-tuning: multi-scale STFT, multi-period, combined.

Every discriminator maps audio (B, C, T) to a list with one `(logits, feature_maps)` pair per
sub-discriminator, so the adversarial and feature-matching losses (`helius.train.adversarial`)
treat all of them alike. Each channel is judged as a separate mono signal, as the
reconstruction loss does, so a stereo model is held to the same standard on both sides.

- `MultiScaleSTFTDiscriminator` looks at complex spectrograms (real and imaginary parts as two
  image channels) at several FFT sizes: each size trades time for frequency resolution, and
  keeping the phase lets it catch the phase artefacts a magnitude loss cannot see.
- `MultiPeriodDiscriminator` folds the waveform into (T / p, p) images for several prime
  periods p, so each sub-discriminator sees samples p apart side by side and judges the
  periodic (pitched) structure directly in the waveform.

Convolutions are weight-normalised: it keeps discriminator training stable without batch
statistics, which would couple real and fake examples in one batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

# One (logits, feature maps) pair per sub-discriminator.
DiscriminatorOutput = tuple[torch.Tensor, list[torch.Tensor]]

LEAKY_SLOPE = 0.2


def _conv2d(
    in_channels: int,
    out_channels: int,
    kernel_size: tuple[int, int],
    stride: tuple[int, int] = (1, 1),
    dilation: tuple[int, int] = (1, 1),
) -> nn.Conv2d:
    """A weight-normalised 2-D conv padded so that, at stride 1, it keeps the image size."""
    padding = tuple(d * (k - 1) // 2 for k, d in zip(kernel_size, dilation, strict=True))
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation)
    return weight_norm(conv)


def _as_mono(audio: torch.Tensor) -> torch.Tensor:
    """(..., T) audio as (N, 1, T): every channel of every item is its own signal."""
    return audio.reshape(-1, 1, audio.shape[-1])


class _ConvStack(nn.Module):
    """Convs with a LeakyReLU after each, then a 1-channel logit conv; forward gives
    (logits, the activation after every hidden conv)."""

    def __init__(self, hidden: Sequence[nn.Module], logit: nn.Module) -> None:
        super().__init__()
        self.hidden = nn.ModuleList(hidden)
        self.logit = logit

    def forward(self, x: torch.Tensor) -> DiscriminatorOutput:
        features = []
        for conv in self.hidden:
            x = F.leaky_relu(conv(x), LEAKY_SLOPE)
            features.append(x)
        return self.logit(x), features


class STFTSubDiscriminator(nn.Module):
    """Judges the complex STFT at one FFT size (hop n_fft / 4, Hann window).

    The spectrogram is an image of frequency (height) x time (width) with the real and
    imaginary parts as its two channels. Kernels are wide in frequency and dilated in time
    (1, 2, 4, ...), and each dilated conv halves the frequency axis, as in EnCodec's MS-STFT
    discriminator: the time dilations widen the temporal context cheaply while the frequency
    strides keep the cost of large FFTs down.
    """

    def __init__(
        self,
        n_fft: int,
        channels: int = 32,
        dilations: Sequence[int] = (1, 2, 4),
        kernel_freq: int = 9,
        kernel_time: int = 3,
    ) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.hop_samples = n_fft // 4
        # Not persistent: the window is a function of n_fft, not a learned or saved state.
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        kernel = (kernel_freq, kernel_time)
        hidden = [_conv2d(2, channels, kernel)]
        hidden += [
            _conv2d(channels, channels, kernel, stride=(2, 1), dilation=(1, d)) for d in dilations
        ]
        hidden.append(_conv2d(channels, channels, (3, 3)))
        self.stack = _ConvStack(hidden, _conv2d(channels, 1, (3, 3)))

    def spectrogram(self, mono: torch.Tensor) -> torch.Tensor:
        """(N, 1, T) audio to its (N, 2, n_fft / 2 + 1, frames) real/imaginary spectrogram."""
        # The STFT runs in float32 even under bf16 autocast: bf16's 8-bit mantissa would
        # swamp quiet bins with the rounding error of loud ones.
        with torch.autocast(mono.device.type, enabled=False):
            spectrum = torch.stft(
                mono[:, 0].float(),
                self.n_fft,
                self.hop_samples,
                window=self.window.float(),
                center=True,
                pad_mode="constant",  # zeros, unlike reflection, work for clips of any length
                normalized=True,  # scale 1 / sqrt(n_fft): every FFT size sees similar levels
                return_complex=True,
            )
        return torch.stack([spectrum.real, spectrum.imag], dim=1)

    def forward(self, mono: torch.Tensor) -> DiscriminatorOutput:
        return self.stack(self.spectrogram(mono))


class MultiScaleSTFTDiscriminator(nn.Module):
    """One `STFTSubDiscriminator` per FFT size; forward gives one output per size."""

    def __init__(
        self,
        fft_sizes: Sequence[int] = (2048, 1024, 512),
        channels: int = 32,
        dilations: Sequence[int] = (1, 2, 4),
        kernel_freq: int = 9,
        kernel_time: int = 3,
    ) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(
            STFTSubDiscriminator(n_fft, channels, dilations, kernel_freq, kernel_time)
            for n_fft in fft_sizes
        )

    def forward(self, audio: torch.Tensor) -> list[DiscriminatorOutput]:
        mono = _as_mono(audio)
        return [discriminator(mono) for discriminator in self.discriminators]


class PeriodSubDiscriminator(nn.Module):
    """Judges the waveform folded into a (T / period, period) image.

    Kernels (5, 1) with stride (3, 1) run down each column only, i.e. over samples exactly
    `period` apart; the columns share weights. Channels grow 4x per layer up to `max_channels`
    (HiFi-GAN's layout, 1024 there; smaller here by default since a second discriminator
    family judges the spectrum).
    """

    def __init__(
        self, period: int, channels: int = 32, max_channels: int = 256, layers: int = 4
    ) -> None:
        super().__init__()
        self.period = period
        widths = [min(channels * 4**layer, max_channels) for layer in range(layers)]
        hidden = [
            _conv2d(inputs, outputs, (5, 1), stride=(3, 1))
            for inputs, outputs in zip([1, *widths[:-1]], widths, strict=True)
        ]
        hidden.append(_conv2d(widths[-1], widths[-1], (5, 1)))
        self.stack = _ConvStack(hidden, _conv2d(widths[-1], 1, (3, 1)))

    def forward(self, mono: torch.Tensor) -> DiscriminatorOutput:
        # Zero padding to a whole number of periods: real and fake get the same padding.
        padded = F.pad(mono, (0, -mono.shape[-1] % self.period))
        folded = padded.reshape(padded.shape[0], 1, -1, self.period)
        return self.stack(folded)


class MultiPeriodDiscriminator(nn.Module):
    """One `PeriodSubDiscriminator` per period; forward gives one output per period.

    Periods are primes by default so that no sub-discriminator sees a subset of another's
    sample pairs.
    """

    def __init__(
        self,
        periods: Sequence[int] = (2, 3, 5, 7, 11),
        channels: int = 32,
        max_channels: int = 256,
        layers: int = 4,
    ) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(
            PeriodSubDiscriminator(period, channels, max_channels, layers) for period in periods
        )

    def forward(self, audio: torch.Tensor) -> list[DiscriminatorOutput]:
        mono = _as_mono(audio)
        return [discriminator(mono) for discriminator in self.discriminators]


class CombinedDiscriminator(nn.Module):
    """The multi-scale STFT and the multi-period discriminators as one module.

    forward(audio (B, C, T)) gives the STFT sub-discriminators' outputs (one per FFT size)
    followed by the period ones (one per period). An empty `fft_sizes` or `periods` leaves that
    family out.
    """

    def __init__(
        self,
        fft_sizes: Sequence[int] = (2048, 1024, 512),
        periods: Sequence[int] = (2, 3, 5, 7, 11),
        stft_channels: int = 32,
        period_channels: int = 32,
        period_max_channels: int = 256,
    ) -> None:
        super().__init__()
        if not fft_sizes and not periods:
            raise ValueError("CombinedDiscriminator needs at least one FFT size or one period")
        self.stft = MultiScaleSTFTDiscriminator(fft_sizes, stft_channels)
        self.period = MultiPeriodDiscriminator(periods, period_channels, period_max_channels)

    def forward(self, audio: torch.Tensor) -> list[DiscriminatorOutput]:
        return self.stft(audio) + self.period(audio)
