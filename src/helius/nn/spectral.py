"""Streamable STFT layers for the wave VAE's spectral design, and its ConvNeXt block.

- `StftAnalysis`: audio (B, C, T) -> log-magnitudes (B, C * bins, T / hop) of causal frames:
  frame j covers samples [(j + 1) * hop - n_fft, (j + 1) * hop), zero before the start.
- `IstftSynthesis`: (B, C * 2 * bins, F) log-magnitude and phase rows -> audio (B, C, F * hop)
  by inverse FFT and overlap-add. Frame j is laid at samples [j * hop, j * hop + n_fft), so
  output sample n depends only on frames j <= n / hop (causal); analysis + synthesis delay the
  signal by n_fft - hop samples (`SYNTHESIS_DELAY`).
- `ConvNeXtBlock`: a causal depthwise conv, LayerNorm over channels, a pointwise MLP and a
  small learned scale on the residual branch (ConvNeXt, as used by the Vocos vocoder).

All of them stream exactly through the `InputCache` / `OutputOverlap` mixins of
`streaming.py`, in Python and scripted alike.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from helius.nn.streaming import CachedConv1d, InputCache, OutputOverlap

LOG_FLOOR = 1e-4  # added to analysis magnitudes before the log (about -80 dB re a full bin)
MAX_LOG_MAGNITUDE = 8.0  # the decoder's log-magnitudes are clamped here (e^8 ~ 3000)
LAYER_SCALE = 0.1  # ConvNeXt residual branches start at a tenth: near identity at first


def check_stft_sizes(n_fft: int, hop: int) -> None:
    if n_fft < 2 or hop < 1 or n_fft % hop:
        raise ValueError(f"STFT needs hop ({hop}) to divide n_fft ({n_fft})")


def log_magnitude_frames(
    buffer: torch.Tensor, window: torch.Tensor, n_fft: int, hop: int, floor: float = LOG_FLOOR
) -> torch.Tensor:
    """log(|rfft(frame * window)| + floor) of every whole frame of `buffer` (B, C, L):
    (B, C * bins, frames), channel-major rows."""
    batch = buffer.size(0)
    frames = buffer.unfold(2, n_fft, hop) * window  # (B, C, F, n_fft)
    spectrum = torch.fft.rfft(frames, dim=-1)
    magnitude = torch.sqrt(spectrum.real.square() + spectrum.imag.square())
    features = torch.log(magnitude + floor)  # (B, C, F, bins)
    return features.permute(0, 1, 3, 2).reshape(batch, -1, features.size(2))


def bin_advance(bins: int, first_frame: int, frames: int, steps: int) -> torch.Tensor:
    """(bins, frames) phase that a sinusoid at each bin's centre frequency gains by frame
    first_frame + j: 2 pi k (frame) / steps, steps = n_fft / hop (kept exact by integers)."""
    k = torch.arange(bins).unsqueeze(1)
    frame = torch.arange(frames).unsqueeze(0) + first_frame
    return (k * frame).remainder(steps).float() * (2.0 * 3.141592653589793 / steps)


def schroeder_phases(bins: int) -> torch.Tensor:
    """(bins,) Schroeder's phases -pi k (k - 1) / bins, wrapped to [-pi, pi): a flat spectrum
    with these phases is a frame of low crest factor (zero phases make one sharp pulse)."""
    k = torch.arange(bins, dtype=torch.float64)
    return ((-math.pi * k * (k - 1) / bins).remainder(2 * math.pi) - math.pi).float()


def integrate_phase_rows(
    parts: torch.Tensor, channels: int, start: torch.Tensor, offset: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows [log-magnitudes, phase increments] of each channel (B, C * 2 * bins, F) -> the same
    rows with phases: phase of frame j = offset + start + the increments of frames 0..j.

    `start` (B * C, bins) is what earlier frames summed to (zeros for a new signal), `offset`
    (bins,) a fixed phase per bin. Also returns the new sum (B * C, bins), wrapped to [0, 2 pi):
    the `start` of the next chunk when streaming. F must be at least 1."""
    batch, frames = parts.size(0), parts.size(2)
    bins = offset.size(0)
    grouped = parts.reshape(batch * channels, 2, bins, frames)
    total = torch.cumsum(grouped[:, 1], dim=-1) + start.unsqueeze(-1)
    phases = total + offset.view(1, bins, 1)
    rows = torch.stack([grouped[:, 0], phases], dim=1).reshape(parts.shape)
    return rows, total[:, :, frames - 1].remainder(2.0 * math.pi)


def synthesis_frames(
    parts: torch.Tensor,
    window: torch.Tensor,
    channels: int,
    hop: int = 0,
    first_frame: int = 0,
    max_log_magnitude: float = MAX_LOG_MAGNITUDE,
) -> torch.Tensor:
    """(B, C * 2 * bins, F) rows [log-magnitudes of channel 0, phases of channel 0, ...] ->
    windowed time frames (B * C, n_fft, F), each with its zero-phase pulse at the frame's
    centre (at the edge, where the window is zero, an untrained decoder would be silent).

    With `hop` > 0 the phase rows are relative to each bin's centre-frequency rotation
    (`bin_advance` from `first_frame`, the frame's index in the stream): a decoder that holds
    its phase still then makes a steady sinusoid that overlap-adds coherently, instead of
    having to turn bin k by 2 pi k hop / n_fft every frame itself."""
    batch, frames = parts.size(0), parts.size(2)
    n_fft = window.size(0)
    bins = n_fft // 2 + 1
    grouped = parts.reshape(batch * channels, 2, bins, frames)
    magnitude = torch.exp(grouped[:, 0].clamp(max=max_log_magnitude))
    phase = grouped[:, 1]
    if hop > 0:  # phases relative to each bin's own rotation: a constant phase is a steady tone
        advance = bin_advance(bins, first_frame, frames, n_fft // hop)
        phase = phase + advance.to(phase.device, phase.dtype)
    spectrum = torch.complex(magnitude * torch.cos(phase), magnitude * torch.sin(phase))
    time = torch.fft.irfft(spectrum, n=n_fft, dim=1)  # (B * C, n_fft, F)
    return torch.roll(time, n_fft // 2, dims=1) * window.unsqueeze(1)


def overlap_add(frames: torch.Tensor, hop: int) -> torch.Tensor:
    """(N, n_fft, F) windowed frames -> (N, 1, (F - 1) * hop + n_fft), frame j at j * hop."""
    n_fft, count = frames.size(1), frames.size(2)
    length = (count - 1) * hop + n_fft
    summed = F.fold(frames, (1, length), (1, n_fft), stride=(1, hop))
    return summed.reshape(frames.size(0), 1, length)


def window_gain(window: torch.Tensor, hop: int) -> torch.Tensor:
    """1 / (sum of the squared window over the frames that overlap each sample), one value per
    position within a hop: dividing by it makes synthesis(analysis(x)) = x in the steady
    state. Shape (hop,)."""
    squared = window.square().reshape(-1, hop).sum(dim=0)
    return squared.reciprocal()


class StftAnalysis(nn.Module, InputCache):
    """Audio (B, C, T), T a multiple of hop -> log-magnitudes (B, C * bins, T / hop)."""

    def __init__(self, n_fft: int, hop: int) -> None:
        super().__init__()
        check_stft_sizes(n_fft, hop)
        self.n_fft = n_fft
        self.hop = hop
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self._setup_input_cache(n_fft, hop, causal=True, name=type(self).__name__)

    @property
    def bins(self) -> int:
        return self.n_fft // 2 + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        buffer = self._window_input(x)
        if buffer is None:
            return x.new_zeros(x.size(0), x.size(1) * self.bins, 0)
        return log_magnitude_frames(buffer, self.window, self.n_fft, self.hop)


class IstftSynthesis(nn.Module, OutputOverlap):
    """(B, C * 2 * bins, F) log-magnitude and phase rows -> audio (B, C, F * hop)."""

    def __init__(
        self,
        n_fft: int,
        hop: int,
        channels: int,
        phase_advance: bool = True,
        integrate_phase: bool = False,
    ) -> None:
        super().__init__()
        check_stft_sizes(n_fft, hop)
        self.n_fft = n_fft
        self.hop = hop
        self.channels = channels
        self.phase_advance = phase_advance
        # integrate_phase: the phase rows are increments per frame (`integrate_phase_rows`),
        # laid on Schroeder's phases so that zero increments start as a low-crest-factor sound.
        self.integrate_phase = integrate_phase
        window = torch.hann_window(n_fft)
        self.register_buffer("window", window, persistent=False)
        self.register_buffer("gain", window_gain(window, hop), persistent=False)
        self.register_buffer("phase_offset", schroeder_phases(self.bins), persistent=False)
        self._setup_output_overlap(n_fft, hop, causal=True, name=type(self).__name__)
        self.stream_next_frame = 0  # the index of the next frame (mod n_fft / hop)
        # The phase increments summed so far (B * C, bins); empty at the start of a stream.
        self.register_buffer("stream_phase_sum", torch.zeros(0), persistent=False)

    @property
    def delay_samples(self) -> int:
        """How far synthesis(analysis(x)) lags x."""
        return self.n_fft - self.hop

    @property
    def bins(self) -> int:
        return self.n_fft // 2 + 1

    def reset_streaming_state(self) -> None:
        self.stream_cache = self.stream_cache.new_zeros(0)
        self.stream_phase_sum = self.stream_phase_sum.new_zeros(0)
        self.stream_next_frame = 0

    def forward(self, parts: torch.Tensor) -> torch.Tensor:
        batch, count = parts.size(0), parts.size(2)
        if count == 0:
            return parts.new_zeros(batch, self.channels, 0)
        if self.streaming_enabled:
            self._drop_state_if_reset()
        if self.integrate_phase:
            start = self.stream_phase_sum
            if not self.streaming_enabled or start.size(0) != batch * self.channels:
                start = parts.new_zeros(batch * self.channels, self.n_fft // 2 + 1)
            parts, phase_sum = integrate_phase_rows(parts, self.channels, start, self.phase_offset)
            if self.streaming_enabled:
                self.stream_phase_sum = phase_sum.detach()
        first = self.stream_next_frame if self.streaming_enabled else 0
        if self.streaming_enabled:
            self.stream_next_frame = (first + count) % (self.n_fft // self.hop)
        hop = self.hop if self.phase_advance else 0
        frames = synthesis_frames(parts, self.window, self.channels, hop, first)
        out = self._overlap_output(overlap_add(frames, self.hop), count)  # (B * C, 1, count * hop)
        out = (out.reshape(-1, count, self.hop) * self.gain).reshape(batch, self.channels, -1)
        return out


class ConvNeXtBlock(nn.Module):
    """x + scale * MLP(LayerNorm(causal depthwise conv(x))) on (B, width, frames)."""

    def __init__(self, width: int, kernel: int = 7, expansion: int = 3) -> None:
        super().__init__()
        self.depthwise = CachedConv1d(width, width, kernel, groups=width, causal=True)
        self.norm = nn.LayerNorm(width)
        self.expand = nn.Linear(width, width * expansion)
        self.project = nn.Linear(width * expansion, width)
        self.scale = nn.Parameter(torch.full((width,), LAYER_SCALE))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.norm(self.depthwise(x).transpose(1, 2))
        hidden = self.project(F.gelu(self.expand(hidden)))
        return x + (self.scale * hidden).transpose(1, 2)
