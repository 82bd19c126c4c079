"""TorchScript twins of the spectral wave VAE's layers (`spectral.py`, `models/wave_stft.py`),
for export and for the scripted streaming engine, on the pattern of `scriptable.py`: weights
copied, state in fixed-size buffers, `reset()` exported. They call the same pure functions as
the Python layers, so fed the same chunks they return the same numbers.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from helius.models.wave_stft import StftDecoder, StftEncoder, unfold_frames
from helius.nn.scriptable import StreamSequential, scriptable_twin
from helius.nn.spectral import (
    ConvNeXtBlock,
    IstftSynthesis,
    StftAnalysis,
    integrate_phase_rows,
    log_magnitude_frames,
    overlap_add,
    synthesis_frames,
)


class StreamStftAnalysis(nn.Module):
    """`StftAnalysis`: audio (B, C, T) -> log-magnitudes (B, C * bins, T / hop)."""

    def __init__(self, analysis: StftAnalysis, channels: int, batch_size: int) -> None:
        super().__init__()
        self.n_fft = analysis.n_fft
        self.hop = analysis.hop
        self.register_buffer("window", analysis.window.detach().clone())
        self.register_buffer("cache", torch.zeros(batch_size, channels, self.n_fft - self.hop))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.size(0) != self.cache.size(0):
            self.cache = x.new_zeros(x.size(0), self.cache.size(1), self.cache.size(2))
        buffer = torch.cat([self.cache, x], dim=2)
        kept = self.cache.size(2)
        self.cache = buffer.narrow(2, buffer.size(2) - kept, kept)
        return log_magnitude_frames(buffer, self.window, self.n_fft, self.hop)

    @torch.jit.export
    def reset(self) -> None:
        self.cache = torch.zeros_like(self.cache)  # not in place: see StreamConv1d.reset


class StreamIstftSynthesis(nn.Module):
    """`IstftSynthesis`: log-magnitude and phase rows (B, C * 2 * bins, F) -> (B, C, F * hop)."""

    def __init__(self, synthesis: IstftSynthesis, batch_size: int) -> None:
        super().__init__()
        self.hop = synthesis.hop
        self.steps = synthesis.n_fft // synthesis.hop
        self.advance_hop = synthesis.hop if synthesis.phase_advance else 0
        self.channels = synthesis.channels
        self.integrate_phase = synthesis.integrate_phase
        self.next_frame = 0
        self.register_buffer("window", synthesis.window.detach().clone())
        self.register_buffer("gain", synthesis.gain.detach().clone())
        self.register_buffer("phase_offset", synthesis.phase_offset.detach().clone())
        overlap = synthesis.n_fft - synthesis.hop
        self.register_buffer("cache", torch.zeros(batch_size * self.channels, 1, overlap))
        self.register_buffer("phase_sum", torch.zeros(batch_size * self.channels, synthesis.bins))

    def forward(self, parts: torch.Tensor) -> torch.Tensor:
        batch, count = parts.size(0), parts.size(2)
        rows = batch * self.channels
        if rows != self.cache.size(0):
            self.cache = parts.new_zeros(rows, 1, self.cache.size(2))
            self.phase_sum = parts.new_zeros(rows, self.phase_sum.size(1))
        if self.integrate_phase and count > 0:
            parts, self.phase_sum = integrate_phase_rows(
                parts, self.channels, self.phase_sum, self.phase_offset
            )
        frames = synthesis_frames(
            parts, self.window, self.channels, self.advance_hop, self.next_frame
        )
        self.next_frame = (self.next_frame + count) % self.steps
        full = overlap_add(frames, self.hop)
        overlap, length = self.cache.size(2), count * self.hop
        full.narrow(2, 0, overlap).add_(self.cache)
        self.cache = full.narrow(2, length, overlap)
        out = full.narrow(2, 0, length).reshape(rows, count, self.hop) * self.gain
        return out.reshape(batch, self.channels, length)

    @torch.jit.export
    def reset(self) -> None:
        self.cache = torch.zeros_like(self.cache)
        self.phase_sum = torch.zeros_like(self.phase_sum)
        self.next_frame = 0


class StreamConvNeXt(nn.Module):
    """`ConvNeXtBlock` with its depthwise conv as a twin."""

    def __init__(self, block: ConvNeXtBlock, batch_size: int) -> None:
        super().__init__()
        self.depthwise = scriptable_twin(block.depthwise, batch_size)
        self.norm = copy.deepcopy(block.norm)
        self.expand = copy.deepcopy(block.expand)
        self.project = copy.deepcopy(block.project)
        self.scale = nn.Parameter(block.scale.detach().clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.norm(self.depthwise(x).transpose(1, 2))
        hidden = self.project(torch.nn.functional.gelu(self.expand(hidden)))
        return x + (self.scale * hidden).transpose(1, 2)

    @torch.jit.export
    def reset(self) -> None:
        self.depthwise.reset()


class StreamStftEncoder(nn.Module):
    """`StftEncoder` as twins: log-magnitudes (B, rows, F) -> mu (B, D, F / k)."""

    def __init__(self, encoder: StftEncoder, batch_size: int) -> None:
        super().__init__()
        self.input = scriptable_twin(encoder.input, batch_size)
        self.blocks = StreamSequential([StreamConvNeXt(b, batch_size) for b in encoder.blocks])
        self.down = scriptable_twin(encoder.down, batch_size)
        self.mu = scriptable_twin(encoder.mu, batch_size)  # hosts get means; logvar is unused

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.mu(self.down(self.blocks(self.input(features))))

    @torch.jit.export
    def reset(self) -> None:
        self.input.reset()
        self.blocks.reset()
        self.down.reset()
        self.mu.reset()


class StreamStftDecoder(nn.Module):
    """`StftDecoder` as twins: latents (B, D, m) -> rows (B, C * 2 * bins, m * k)."""

    def __init__(self, decoder: StftDecoder, batch_size: int) -> None:
        super().__init__()
        self.frames_per_latent = decoder.frames_per_latent
        self.input = scriptable_twin(decoder.input, batch_size)
        self.blocks = StreamSequential([StreamConvNeXt(b, batch_size) for b in decoder.blocks])
        self.norm = copy.deepcopy(decoder.norm)
        self.head = copy.deepcopy(decoder.head)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        hidden = self.blocks(unfold_frames(self.input(z), self.frames_per_latent))
        return self.head(self.norm(hidden.transpose(1, 2))).transpose(1, 2)

    @torch.jit.export
    def reset(self) -> None:
        self.input.reset()
        self.blocks.reset()
