"""TorchScript twins of the streaming layers, built from trained ones for export (inference only).

The training layers (`streaming.py`) keep their state in Python attributes behind a mixin,
which TorchScript cannot compile. A twin holds the same weights and keeps its state in a
registered buffer of fixed size, which is possible because an exported model is only ever fed
whole multiples of its hop: then a causal `CachedConv1d` with window w and stride s always
carries exactly w - s input samples into the next call (its zero left padding at the start),
and a `CachedConvTranspose1d` with kernel k always carries a k - s sample output tail. Fed
the same chunks, a twin returns exactly what its original returns in streaming mode.

Every twin has `forward` and an exported `reset()` (zeroing its state, i.e. the next call
starts a new signal); `StreamSequential` chains twins and resets them all. The state is built
for one batch size; a call with another batch size starts a new stream at that size.

`scriptable_twin(module, batch_size)` converts a trained layer or block; non-causal layers
raise ConfigError, since their output needs input that has not arrived yet.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from helius.errors import ConfigError
from helius.nn.blocks import DownStage, FilteredNoise, ResidualUnit, Snake, UpStage, snake_with
from helius.nn.pqmf import PQMF
from helius.nn.streaming import (
    CachedConv1d,
    CachedConvTranspose1d,
    Streamable,
    apply_matrix,
    bias_column,
    conv1d_by_matmul,
    conv_matrix,
    conv_transpose1d_by_matmul,
    conv_transpose_matrix,
    stacked_taps,
)


def _frozen(tensor: torch.Tensor) -> nn.Parameter:
    return nn.Parameter(tensor.detach().clone(), requires_grad=False)


class StreamConv1d(nn.Module):
    """A padding-free conv1d that prepends the last `window - stride` input samples it saw.

    Computed by the same matrix product as a streaming `CachedConv1d` (much faster than
    PyTorch's conv for a few frames); grouped convs use the plain conv.
    """

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        stride: int,
        dilation: int,
        groups: int,
        batch_size: int,
    ) -> None:
        super().__init__()
        kernel = weight.shape[-1]
        grouped = groups != 1
        # Only what forward uses: weight and bias for grouped convs, their matrix forms otherwise.
        self.weight = _frozen(weight if grouped else torch.zeros(0))
        self.matrix = _frozen(torch.zeros(0) if grouped else conv_matrix(weight))
        self.bias = None if bias is None or not grouped else _frozen(bias)
        self.bias_column = None if bias is None or grouped else _frozen(bias_column(bias))
        self.stride = stride
        self.dilation = dilation
        self.groups = groups
        window = dilation * (kernel - 1) + 1
        in_channels = weight.shape[1] * groups
        self.register_buffer("cache", torch.zeros(batch_size, in_channels, window - stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.size(0) != self.cache.size(0):
            self.cache = x.new_zeros(x.size(0), self.cache.size(1), self.cache.size(2))
        buffer = x
        kept = self.cache.size(2)
        if kept > 0:
            buffer = torch.cat([self.cache, x], dim=2)
            self.cache = buffer.narrow(2, buffer.size(2) - kept, kept)
        if self.groups != 1:
            return F.conv1d(
                buffer, self.weight, self.bias, self.stride, 0, self.dilation, self.groups
            )
        return conv1d_by_matmul(buffer, self.matrix, self.bias_column, self.stride, self.dilation)

    @torch.jit.export
    def reset(self) -> None:
        # A new tensor, not an in-place zero: after a host ran the model under
        # torch.inference_mode() the cache is an inference tensor, which may not be
        # updated in place outside that mode (nn~ calls reset() that way).
        self.cache = torch.zeros_like(self.cache)


class StreamConvTranspose1d(nn.Module):
    """A transposed conv1d that adds the `kernel - stride` sample tail of its last output.

    Computed by the same matrix product and fold as a streaming `CachedConvTranspose1d`.
    """

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        stride: int,
        groups: int,
        batch_size: int,
    ) -> None:
        super().__init__()
        out_channels, kernel = weight.shape[1] * groups, weight.shape[-1]
        grouped = groups != 1
        self.weight = _frozen(weight if grouped else torch.zeros(0))
        self.matrix = _frozen(torch.zeros(0) if grouped else conv_transpose_matrix(weight))
        self.bias_column = None if bias is None else _frozen(bias_column(bias))
        self.stride = stride
        self.groups = groups
        self.kernel = kernel
        self.register_buffer("cache", torch.zeros(batch_size, out_channels, kernel - stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.size(0) != self.cache.size(0):
            self.cache = x.new_zeros(x.size(0), self.cache.size(1), self.cache.size(2))
        length = x.size(2) * self.stride
        if self.groups != 1:
            full = F.conv_transpose1d(x, self.weight, None, self.stride, 0, 0, self.groups)
        else:
            full = conv_transpose1d_by_matmul(x, self.matrix, self.stride, self.kernel)
        overlap = self.cache.size(2)
        full.narrow(2, 0, overlap).add_(self.cache)
        self.cache = full.narrow(2, length, overlap)
        out = full.narrow(2, 0, length)
        bias = self.bias_column
        if bias is not None:
            out = out + bias
        return out

    @torch.jit.export
    def reset(self) -> None:
        # A new tensor, not an in-place zero: after a host ran the model under
        # torch.inference_mode() the cache is an inference tensor, which may not be
        # updated in place outside that mode (nn~ calls reset() that way).
        self.cache = torch.zeros_like(self.cache)


class StreamSequential(nn.Module):
    """Twins applied in order; `reset` resets every one."""

    def __init__(self, layers: list[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    @torch.jit.export
    def reset(self) -> None:
        for layer in self.layers:
            layer.reset()


class StreamResidual(nn.Module):
    """x + branch(x) (the residual unit; its causal branch needs no delay on the skip)."""

    def __init__(self, branch: StreamSequential) -> None:
        super().__init__()
        self.branch = branch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)

    @torch.jit.export
    def reset(self) -> None:
        self.branch.reset()


class StreamSnakeResidual(nn.Module):
    """A `ResidualUnit` with Snake activations, x + conv1(snake(conv3(snake(x)))), in 12
    tensor operations per call instead of 18 (a streaming call is mostly per-operation cost).

    Each Snake's alpha moves into the convolutions around it: with u = alpha x,
    alpha snake(x) = u + sin^2(u), so the dilated conv takes the first Snake's output times
    alpha_1 (its columns divided by alpha_1), produces alpha_2 times its own output (rows and
    bias times alpha_2), the second Snake becomes h + sin^2(h), and the 1x1 conv's columns are
    divided by alpha_2. Zero stays zero under the scaling, so the cached left context (zeros
    at the start of a stream) means the same as in the unit it was built from.
    """

    def __init__(self, unit: ResidualUnit, batch_size: int) -> None:
        super().__init__()
        first, inner, second, outer = unit.block
        alpha_in = first.log_alpha.detach().exp().reshape(-1)
        alpha_mid = second.log_alpha.detach().exp().reshape(-1)
        kernel = inner.kernel_size[0]
        self.alpha = _frozen(alpha_in.reshape(1, -1, 1))
        inner_matrix = conv_matrix(inner.weight) / alpha_in.repeat(kernel)[None, :]
        self.inner = _frozen(inner_matrix * alpha_mid[:, None])
        self.inner_bias = _frozen(bias_column(inner.bias) * alpha_mid[:, None])
        self.outer = _frozen(conv_matrix(outer.weight) / alpha_mid[None, :])
        self.outer_bias = _frozen(bias_column(outer.bias))
        self.kernel = kernel
        self.dilation = inner.dilation[0]
        self.kept = inner.window_samples - 1
        self.register_buffer("cache", torch.zeros(batch_size, alpha_in.numel(), self.kept))

    @staticmethod
    def fits(unit: ResidualUnit) -> bool:
        """True for the unit this twin fuses: Snakes around two plain, biased convolutions."""
        first, inner, second, outer = unit.block
        convs = (inner, outer)
        return (
            isinstance(first, Snake)
            and isinstance(second, Snake)
            and all(conv.groups == 1 and conv.bias is not None for conv in convs)
            and inner.stride[0] == 1
            and outer.kernel_size[0] == 1
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.size(0) != self.cache.size(0):
            self.cache = x.new_zeros(x.size(0), self.cache.size(1), self.kept)
        scaled = self.alpha * x
        sine = torch.sin(scaled)
        buffer = torch.cat([self.cache, torch.addcmul(scaled, sine, sine)], dim=2)
        self.cache = buffer.narrow(2, buffer.size(2) - self.kept, self.kept)
        stacked = stacked_taps(buffer, self.kernel, 1, self.dilation)
        hidden = apply_matrix(self.inner, stacked, self.inner_bias)
        sine = torch.sin(hidden)
        # A batch of 1 runs 2-D from the stacking on; the sum broadcasts back to (1, C, T).
        return x + apply_matrix(self.outer, torch.addcmul(hidden, sine, sine), self.outer_bias)

    @torch.jit.export
    def reset(self) -> None:
        # A new tensor, not an in-place zero: after a host ran the model under
        # torch.inference_mode() the cache is an inference tensor, which may not be
        # updated in place outside that mode (nn~ calls reset() that way).
        self.cache = torch.zeros_like(self.cache)


class StreamSnake(nn.Module):
    """Snake, x + sin^2(alpha x) / alpha, with alpha and 1 / alpha computed once at export."""

    def __init__(self, snake: Snake) -> None:
        super().__init__()
        alpha = snake.log_alpha.detach().exp()
        self.alpha = _frozen(alpha)
        self.inverse_alpha = _frozen(alpha.reciprocal())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return snake_with(x, self.alpha, self.inverse_alpha)

    @torch.jit.export
    def reset(self) -> None:
        pass


class Stateless(nn.Module):
    """A stateless layer (LeakyReLU, ELU, ...) with the twins' `reset`."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)

    @torch.jit.export
    def reset(self) -> None:
        pass


class StreamNoise(nn.Module):
    """The filtered-noise branch: fresh noise each call, so its output is random by design."""

    def __init__(self, noise: FilteredNoise, batch_size: int) -> None:
        super().__init__()
        self.gain = scriptable_twin(noise.gain, batch_size)
        self.filter_taps = _frozen(noise.filter_taps)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        gain = torch.sigmoid(self.gain(features))
        frames = gain.size(-1)
        taps = self.filter_taps.size(-1)
        noise = torch.randn(
            gain.size(0), gain.size(1), frames + taps - 1, dtype=gain.dtype, device=gain.device
        )
        shaped = self.filter_taps[:, 0, None] * noise[:, :, :frames]
        for tap in range(1, taps):
            shaped = shaped + self.filter_taps[:, tap, None] * noise[:, :, tap : tap + frames]
        return gain * shaped

    @torch.jit.export
    def reset(self) -> None:
        self.gain.reset()


class StreamAnalysis(nn.Module):
    """PQMF analysis: (B, C, T) -> (B, C * bands, T / bands); T a multiple of bands."""

    def __init__(self, pqmf: PQMF, batch_size: int) -> None:
        super().__init__()
        require_causal(pqmf)
        self.bands = pqmf.bands
        analysis = pqmf._analysis
        weight = analysis.weight if analysis is not None else torch.ones(1, 1, 1)
        self.conv = StreamConv1d(weight, None, self.bands, 1, 1, batch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bands == 1:
            return x
        batch, channels, samples = x.size(0), x.size(1), x.size(2)
        bands = self.conv(x.reshape(batch * channels, 1, samples))
        return bands.reshape(batch, channels * self.bands, -1)

    @torch.jit.export
    def reset(self) -> None:
        self.conv.reset()


class StreamSynthesis(nn.Module):
    """PQMF synthesis: (B, C * bands, F) -> (B, C, F * bands), in polyphase form."""

    def __init__(self, pqmf: PQMF, batch_size: int) -> None:
        super().__init__()
        require_causal(pqmf)
        self.bands = pqmf.bands
        synthesis = pqmf._synthesis
        weight = synthesis.weight if synthesis is not None else torch.ones(1, 1, 1)
        self.conv = StreamConv1d(weight, None, 1, 1, 1, batch_size)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        if self.bands == 1:
            return y
        batch, rows, frames = y.size(0), y.size(1), y.size(2)
        groups = batch * rows // self.bands
        phases = self.conv(y.reshape(groups, self.bands, frames))
        return phases.transpose(1, 2).reshape(batch, rows // self.bands, -1)

    @torch.jit.export
    def reset(self) -> None:
        self.conv.reset()


def require_causal(module: nn.Module) -> None:
    """Raise ConfigError if any streaming layer inside `module` looks ahead."""
    for layer in module.modules():
        if isinstance(layer, Streamable) and layer.lookahead_samples > 0:
            raise ConfigError(
                f"{type(layer).__name__} looks {layer.lookahead_samples} samples ahead "
                "(non-causal padding) and cannot stream; train with model.wave.causal: true"
            )


def scriptable_twin(module: nn.Module, batch_size: int = 1) -> nn.Module:
    """The TorchScript twin of a trained streaming layer or block (weights copied).

    Raises ConfigError for a non-causal layer and TypeError for a layer with no twin yet.
    """
    require_causal(module)
    if isinstance(module, CachedConv1d):
        return StreamConv1d(
            module.weight,
            module.bias,
            module.stride[0],
            module.dilation[0],
            module.groups,
            batch_size,
        )
    if isinstance(module, CachedConvTranspose1d):
        return StreamConvTranspose1d(
            module.weight, module.bias, module.stride[0], module.groups, batch_size
        )
    if isinstance(module, Snake):
        return StreamSnake(module)
    if isinstance(module, nn.LeakyReLU | nn.ELU | nn.Identity):
        return Stateless(module)
    if isinstance(module, ResidualUnit):
        if StreamSnakeResidual.fits(module):
            return StreamSnakeResidual(module, batch_size)
        return StreamResidual(scriptable_twin(module.block, batch_size))
    if isinstance(module, DownStage):
        parts = [module.units, module.activation, module.down]
        return StreamSequential([scriptable_twin(part, batch_size) for part in parts])
    if isinstance(module, UpStage):
        parts = [module.activation, module.up, module.units]
        return StreamSequential([scriptable_twin(part, batch_size) for part in parts])
    if isinstance(module, nn.Sequential):
        return StreamSequential([scriptable_twin(layer, batch_size) for layer in module])
    if isinstance(module, FilteredNoise):
        return StreamNoise(module, batch_size)
    raise TypeError(f"no TorchScript twin for {type(module).__name__}; add one to scriptable.py")
