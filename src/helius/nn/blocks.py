"""Building blocks of the wave models: Snake and other activations, residual dilated units,
down/up-sampling stages and the filtered-noise branch, all on cached (streamable) convolutions.
"""

from __future__ import annotations

import torch
from torch import nn

from helius.nn.streaming import CachedConv1d, CachedConvTranspose1d

ACTIVATIONS: tuple[str, ...] = ("snake", "leaky_relu", "elu")


def snake(x: torch.Tensor, log_alpha: torch.Tensor) -> torch.Tensor:
    """x + sin^2(alpha x) / alpha, alpha = exp(log_alpha)."""
    alpha = log_alpha.exp()
    return snake_with(x, alpha, alpha.reciprocal())


def snake_with(x: torch.Tensor, alpha: torch.Tensor, inverse_alpha: torch.Tensor) -> torch.Tensor:
    """Snake given alpha and 1 / alpha (precomputed once by inference twins): one fused
    multiply-add at the end."""
    sine = torch.sin(alpha * x)
    return torch.addcmul(x, sine * sine, inverse_alpha)


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
        if torch.jit.is_scripting() or not (
            torch.is_grad_enabled() and (x.requires_grad or self.log_alpha.requires_grad)
        ):
            return snake(x, self.log_alpha)
        return _SnakeFunction.apply(x, self.log_alpha)


def make_activation(name: str, channels: int) -> nn.Module:
    """The activation `name` (snake, leaky_relu or elu) for `channels` channels."""
    if name == "snake":
        return Snake(channels)
    if name == "leaky_relu":
        return nn.LeakyReLU(0.2)
    if name == "elu":
        return nn.ELU()
    raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")


class ResidualUnit(nn.Module):
    """x + conv1x1(act(conv3_dilated(act(x)))): widens the receptive field at constant length."""

    def __init__(self, channels: int, dilation: int, activation: str, causal: bool) -> None:
        super().__init__()
        self.block = nn.Sequential(
            make_activation(activation, channels),
            CachedConv1d(channels, channels, 3, dilation=dilation, causal=causal),
            make_activation(activation, channels),
            CachedConv1d(channels, channels, 1, causal=causal),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Causal or centred padding keeps the branch aligned with x, so no delay is needed.
        return x + self.block(x)


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


class FilteredNoise(nn.Module):
    """White noise per output row, shaped by a learned FIR and scaled by a gain from features.

    The gain follows the decoder features (so noise tracks the sound's envelope per band);
    the per-row FIR tilts the noise spectrum inside each band. Noise comes from the global
    torch generator, so it is reproducible under `torch.manual_seed` but differs between
    chunked and offline runs: streaming equals offline only with the branch disabled.
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

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        gain = torch.sigmoid(self.gain(features))
        frames = gain.shape[-1]
        taps = self.filter_taps.shape[-1]
        # Filtering fresh noise of length frames + taps - 1 without padding needs no state
        # between chunks (any past noise is as good as new). A sum of shifted copies, because
        # the backward pass of a depthwise conv1d is very slow on CPU.
        noise = torch.randn(
            gain.shape[0], gain.shape[1], frames + taps - 1, dtype=gain.dtype, device=gain.device
        )
        shaped = self.filter_taps[:, 0, None] * noise[..., :frames]
        for tap in range(1, taps):
            shaped = shaped + self.filter_taps[:, tap, None] * noise[..., tap : tap + frames]
        return gain * shaped
