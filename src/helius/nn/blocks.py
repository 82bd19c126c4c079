"""Building blocks of the wave models: Snake and other activations, residual dilated units,
down/up-sampling stages and the filtered-noise branch, all on cached (streamable) convolutions.
"""

from __future__ import annotations

import torch
from torch import nn

from helius.nn.fast_conv import apply_matrix, bias_column, conv_matrix, stacked_taps
from helius.nn.streaming import CachedConv1d, CachedConvTranspose1d, Streamable

ACTIVATIONS: tuple[str, ...] = ("snake", "leaky_relu", "elu")
NOISE_BLOCK_FRAMES = 1024  # the filtered-noise branch draws its noise in blocks this long


def snake(x: torch.Tensor, log_alpha: torch.Tensor) -> torch.Tensor:
    """x + sin^2(alpha x) / alpha, alpha = exp(log_alpha): one fused multiply-add at the end."""
    alpha = log_alpha.exp()
    sine = torch.sin(alpha * x)
    return torch.addcmul(x, sine * sine, alpha.reciprocal())


class _SnakeFunction(torch.autograd.Function):
    """Snake with a hand-written backward: one sine instead of autograd's graph of the formula.

    Autograd's own graph keeps four full-size intermediates and runs about three times slower
    on the CPU, where Snake on the widest stages is a large share of a step. Saving the output
    y too (about 100 MB more peak memory for the default wave VAE's batch) spares the backward
    a second sine, because sin^2(alpha x) / alpha = y - x:
    d/dx = 1 + sin(2 alpha x); d/d(log alpha) = x sin(2 alpha x) - (y - x). Summed against the
    incoming gradient g, the second is sum(g_x x - g y) with g_x = g (1 + sin(2 alpha x)), the
    gradient for x: one pass fewer.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, log_alpha: torch.Tensor) -> torch.Tensor:
        y = snake(x, log_alpha)
        ctx.save_for_backward(x, log_alpha, y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, log_alpha, y = ctx.saved_tensors
        grad_x = torch.addcmul(grad, grad, torch.sin((2 * log_alpha.exp()) * x))
        per_element = torch.addcmul(grad_x * x, grad, y, value=-1.0)
        return grad_x, per_element.sum(dim=(0, 2), keepdim=True)


class Snake(nn.Module):
    """x + sin^2(alpha x) / alpha with a learned frequency alpha per channel.

    Periodic inductive bias for audio (Ziyin et al. 2020). alpha is stored as its log so it
    stays positive: a negative alpha would flip the sign of the periodic term and an alpha
    crossing zero would divide by zero.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.log_alpha = nn.Parameter(torch.zeros(1, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # is_scripting() alone: TorchScript then skips the autograd.Function it cannot compile.
        if not torch.jit.is_scripting():  # noqa: SIM102
            if torch.is_grad_enabled() and (x.requires_grad or self.log_alpha.requires_grad):
                return _SnakeFunction.apply(x, self.log_alpha)
        return snake(x, self.log_alpha)


def make_activation(name: str, channels: int) -> nn.Module:
    """The activation `name` (snake, leaky_relu or elu) for `channels` channels."""
    if name == "snake":
        return Snake(channels)
    if name == "leaky_relu":
        return nn.LeakyReLU(0.2)
    if name == "elu":
        return nn.ELU()
    raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")


class ResidualUnit(nn.Module, Streamable):
    """x + conv1x1(act(conv3_dilated(act(x)))): widens the receptive field at constant length.

    Streaming with Snake activations, the unit runs fused: 12 tensor operations per call
    instead of 18 (a streaming call is mostly per-operation cost). Each Snake's alpha moves
    into the convolutions around it: with u = alpha x, alpha snake(x) = u + sin^2(u), so the
    dilated conv takes the first Snake's output times alpha_1 (its columns divided by alpha_1),
    produces alpha_2 times its own output (rows and bias times alpha_2), the second Snake
    becomes h + sin^2(h), and the 1x1 conv's columns are divided by alpha_2. Zero stays zero
    under the scaling, so the cached left context (zeros at the start of a stream) means the
    same as in the unfused unit.
    """

    def __init__(self, channels: int, dilation: int, activation: str, causal: bool) -> None:
        super().__init__()
        self.block = nn.Sequential(
            make_activation(activation, channels),
            CachedConv1d(channels, channels, 3, dilation=dilation, causal=causal),
            make_activation(activation, channels),
            CachedConv1d(channels, channels, 1, causal=causal),
        )
        self.dilation = dilation
        self.kept_samples = 2 * dilation  # the dilated conv's left context
        self._setup_streaming(lookahead_samples=0)  # its convs say whether it can stream
        for name in FUSED_BUFFERS:
            self.register_buffer(name, torch.zeros(0), persistent=False)

    def is_fusable(self) -> bool:
        """True with Snake activations (around the two plain biased convs of every unit)."""
        first, _, second, _ = self.block
        return isinstance(first, Snake) and isinstance(second, Snake)

    def prepare_streaming(self) -> None:
        empty = self.block[1].weight.new_zeros(0)
        for name in FUSED_BUFFERS:
            setattr(self, name, empty)
        if not (self.streaming_enabled and self.is_fusable()):
            return
        first, inner, second, outer = self.block
        alpha_in = first.log_alpha.detach().exp().reshape(-1)
        alpha_mid = second.log_alpha.detach().exp().reshape(-1)
        self.fused_alpha = alpha_in.reshape(1, -1, 1)
        inner_matrix = conv_matrix(inner.weight) / alpha_in.repeat(3)[None, :]
        self.fused_inner = inner_matrix * alpha_mid[:, None]
        self.fused_inner_bias = bias_column(inner.bias) * alpha_mid[:, None]
        self.fused_outer = conv_matrix(outer.weight) / alpha_mid[None, :]
        self.fused_outer_bias = bias_column(outer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.streaming_enabled and self.fused_inner.numel() > 0:
            return self._fused(x)
        # Causal or centred padding keeps the branch aligned with x, so no delay is needed.
        return x + self.block(x)

    def _fused(self, x: torch.Tensor) -> torch.Tensor:
        cache = self._stream_state(x)
        if cache is None:
            cache = x.new_zeros(x.size(0), x.size(1), self.kept_samples)
        scaled = self.fused_alpha * x
        sine = torch.sin(scaled)
        buffer = torch.cat([cache, torch.addcmul(scaled, sine, sine)], dim=2)
        kept = self.kept_samples
        self.stream_cache = buffer.narrow(2, buffer.size(2) - kept, kept).detach()
        stacked = stacked_taps(buffer, 3, 1, self.dilation)
        hidden = apply_matrix(self.fused_inner, stacked, self.fused_inner_bias)
        sine = torch.sin(hidden)
        # A batch of 1 runs 2-D from the stacking on; the sum broadcasts back to (1, C, T).
        outer = apply_matrix(
            self.fused_outer, torch.addcmul(hidden, sine, sine), self.fused_outer_bias
        )
        return x + outer


# The fused streaming unit's weights (see ResidualUnit); empty when not fused.
FUSED_BUFFERS = (
    "fused_alpha",
    "fused_inner",
    "fused_inner_bias",
    "fused_outer",
    "fused_outer_bias",
)


class DownStage(nn.Module):
    """Residual units at `in_channels`, then a strided conv (kernel 2 * ratio) to `out_channels`."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        ratio: int,
        dilations: list[int],
        activation: str,
        causal: bool,
    ) -> None:
        super().__init__()
        self.units = nn.Sequential(
            *(ResidualUnit(in_channels, d, activation, causal) for d in dilations)
        )
        self.activation = make_activation(activation, in_channels)
        self.down = CachedConv1d(in_channels, out_channels, 2 * ratio, stride=ratio, causal=causal)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.activation(self.units(x)))


class UpStage(nn.Module):
    """A transposed conv (kernel 2 * ratio) to `out_channels`, then residual units there."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        ratio: int,
        dilations: list[int],
        activation: str,
        causal: bool,
    ) -> None:
        super().__init__()
        self.activation = make_activation(activation, in_channels)
        self.up = CachedConvTranspose1d(
            in_channels, out_channels, 2 * ratio, stride=ratio, causal=causal
        )
        self.units = nn.Sequential(
            *(ResidualUnit(out_channels, d, activation, causal) for d in dilations)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.units(self.up(self.activation(x)))


class FilteredNoise(nn.Module, Streamable):
    """White noise per output row, shaped by a learned FIR and scaled by a gain from features.

    The gain follows the decoder features (so noise tracks the sound's envelope per band);
    the per-row FIR tilts the noise spectrum inside each band. The noise is one sequence per
    row drawn from the global torch generator `NOISE_BLOCK_FRAMES` frames at a time; streaming
    keeps what it drew but has not used yet, so under the same `torch.manual_seed` a stream
    cut into any chunks hears the same noise as one offline call, and equals it.
    """

    INITIAL_GAIN_LOGIT = -5.0  # sigmoid(-5) ~ 0.007: start nearly silent, let training open it

    def __init__(self, in_channels: int, out_rows: int, causal: bool, filter_taps: int = 5) -> None:
        super().__init__()
        self.gain = CachedConv1d(in_channels, out_rows, 3, causal=causal)
        # Start as a pass-through (one unit tap) so the initial noise is white.
        taps = torch.zeros(out_rows, filter_taps)
        taps[:, filter_taps // 2] = 1.0
        self.filter_taps = nn.Parameter(taps)
        with torch.no_grad():
            nn.init.constant_(self.gain.bias, self.INITIAL_GAIN_LOGIT)
        self.noise_block_frames = NOISE_BLOCK_FRAMES
        self._setup_streaming(lookahead_samples=0)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        gain = torch.sigmoid(self.gain(features))
        frames = gain.size(-1)
        taps = self.filter_taps.size(-1)
        # Filtering noise of length frames + taps - 1 without padding; a sum of shifted copies,
        # because the backward pass of a depthwise conv1d is very slow on CPU.
        noise = self._noise(gain, frames, taps - 1)
        shaped = self.filter_taps[:, 0, None] * noise.narrow(2, 0, frames)
        for tap in range(1, taps):
            shaped = shaped + self.filter_taps[:, tap, None] * noise.narrow(2, tap, frames)
        return gain * shaped

    def _noise(self, like: torch.Tensor, frames: int, overlap: int) -> torch.Tensor:
        """The next frames + overlap noise samples (B, rows, frames + overlap) of the sequence,
        of at least that length; a stream keeps all of it from sample `frames` on."""
        pending = self._stream_state(like) if self.streaming_enabled else None
        parts: list[torch.Tensor] = [] if pending is None else [pending]
        drawn = 0 if pending is None else pending.size(-1)
        shape = [like.size(0), like.size(1), self.noise_block_frames]
        while drawn < frames + overlap:
            parts.append(torch.randn(shape, dtype=like.dtype, device=like.device))
            drawn += self.noise_block_frames
        noise = torch.cat(parts, dim=-1)
        if self.streaming_enabled:
            self.stream_cache = noise.narrow(2, frames, noise.size(2) - frames)
        return noise
