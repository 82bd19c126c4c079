"""Cached convolutions: ordinary layers offline, chunk-by-chunk stateful layers when streaming.

Offline (the default, and always during training) a `CachedConv1d` zero-pads its input so that
it maps T samples to T / stride frames, and a `CachedConvTranspose1d` trims its output to
T * stride samples: the shapes every model here relies on.

Streaming is switched on per module instance with `set_streaming(model, True)`, which walks
`model.modules()`; there is no global flag. A streaming conv keeps the input it has not yet
consumed (its left context) between calls and a streaming transposed conv keeps the tail of
its output that overlaps the next chunk, so feeding a signal chunk by chunk yields exactly the
offline output of the whole signal, for any chunk sizes. The layers compile with TorchScript
as they are (their state is buffers, see `Streamable`): export and `helius stream` script the
model itself, not a copy of its code.

Exact streaming needs causal layers (all padding on the left). A non-causal layer looks ahead
(right padding, or a trimmed output start) and would need input that has not arrived yet, so
switching it to streaming raises `ConfigError`; we chose this over delay compensation because
a residual network would need matching delays on every skip path, which is easy to get subtly
wrong, while a model trained causal streams exactly with no extra machinery.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from helius.errors import ConfigError
from helius.nn.fast_conv import (
    bias_column,
    conv1d_by_matmul,
    conv_matrix,
    conv_transpose1d_by_matmul,
    conv_transpose_matrix,
    depthwise_taps,
)


class Streamable:
    """Mixin for layers that keep state between calls when streaming (per instance).

    A subclass calls `_setup_streaming` from its __init__. The state lives in non-persistent
    buffers (`stream_cache`, and what a subclass adds), so checkpoints never hold it, `.to()`
    moves it, and `torch.jit.script` of the model carries it: the scripted model streams with
    these same layers. A scripted model cannot walk its modules to reset them, so layers that
    share one `stream_epoch` counter (`share_reset_counter`) drop their state on the next call
    after the counter is bumped; in Python, `reset_streaming_state` resets directly.
    """

    def _setup_streaming(self, lookahead_samples: int) -> None:
        self.streaming_enabled = False
        # Future input samples one output needs; streaming is exact only when this is 0.
        self.lookahead_samples = lookahead_samples
        self.stream_seen_epoch = 0
        self.register_buffer("stream_cache", torch.zeros(0), persistent=False)
        self.register_buffer("stream_epoch", torch.zeros(1, dtype=torch.long), persistent=False)

    def set_streaming(self, enabled: bool) -> None:
        if enabled and self.lookahead_samples > 0:
            raise ConfigError(
                f"{type(self).__name__} looks {self.lookahead_samples} samples ahead "
                "(non-causal padding) and cannot stream exactly; build it with causal=True"
            )
        self.streaming_enabled = enabled
        self.prepare_streaming()  # weights may have changed since the last stream
        self.reset_streaming_state()

    def prepare_streaming(self) -> None:
        """What a layer computes from its weights once per stream (default: nothing)."""

    def reset_streaming_state(self) -> None:
        """Forget the cached context: the next chunk is treated as the start of a signal."""
        self.stream_cache = self.stream_cache.new_zeros(0)

    def _drop_state_if_reset(self) -> None:
        """Scripted: reset this layer if its `stream_epoch` moved since its last call."""
        if torch.jit.is_scripting():
            epoch = int(self.stream_epoch.item())
            if epoch != self.stream_seen_epoch:
                self.stream_seen_epoch = epoch
                self.reset_streaming_state()

    def _stream_state(self, x: torch.Tensor) -> torch.Tensor | None:
        """The cached state for the chunk x, or None at the start of a stream."""
        self._drop_state_if_reset()
        cache = self.stream_cache
        if cache.dim() != 3:
            return None
        if cache.size(0) != x.size(0) or cache.size(1) != x.size(1):
            if not torch.jit.is_scripting():
                raise ValueError(
                    f"streaming state was built for (batch, channels) {list(cache.shape[:2])} "
                    f"but got {list(x.shape[:2])}; call reset_streaming_state() before a new "
                    "stream"
                )
            return None  # a host changed its batch size: a new stream
        return cache


class InputCache(Streamable):
    """Padding offline, left context carried over between chunks when streaming.

    A subclass calls `_setup_input_cache` once and passes its input through `_window_input`,
    then runs a padding-free convolution on the result.
    """

    def _setup_input_cache(
        self, window_samples: int, stride_samples: int, causal: bool, name: str
    ) -> None:
        total_pad = window_samples - stride_samples
        if total_pad < 0:
            raise ValueError(
                f"{name}: kernel span {window_samples} shorter than stride {stride_samples}"
            )
        self.window_samples = window_samples
        self.stride_samples = stride_samples
        # Non-causal: the extra sample of an odd padding goes left, to look ahead less.
        self.left_pad = total_pad if causal else total_pad - total_pad // 2
        self.right_pad = total_pad - self.left_pad
        self._setup_streaming(lookahead_samples=self.right_pad)

    def _window_input(self, x: torch.Tensor) -> torch.Tensor | None:
        """The input a padding-free conv needs now, or None when no frame is complete yet."""
        if not self.streaming_enabled:
            return F.pad(x, [self.left_pad, self.right_pad])
        cache = self._stream_state(x)
        if cache is None:
            cache = x.new_zeros(x.size(0), x.size(1), self.left_pad)
        buffer = torch.cat([cache, x], dim=-1)
        available = buffer.size(-1)
        if available < self.window_samples:
            self.stream_cache = buffer.detach()
            return None
        frames = (available - self.window_samples) // self.stride_samples + 1
        # Keep what the next frame starts from; detached so a long stream holds no graph.
        kept = frames * self.stride_samples
        self.stream_cache = buffer.narrow(2, kept, available - kept).detach()
        # narrow, not [:, :, a:b]: TorchScript runs one op for it instead of one per dimension
        return buffer.narrow(2, 0, (frames - 1) * self.stride_samples + self.window_samples)


class OutputOverlap(Streamable):
    """Trimming offline, overlap-add of the output tail between chunks when streaming."""

    def _setup_output_overlap(
        self, kernel_samples: int, stride_samples: int, causal: bool, name: str
    ) -> None:
        overlap = kernel_samples - stride_samples
        if overlap < 0:
            raise ValueError(
                f"{name}: kernel {kernel_samples} shorter than stride {stride_samples}"
            )
        self.kernel_samples = kernel_samples
        self.stride_samples = stride_samples
        self.left_trim = 0 if causal else overlap // 2
        self._setup_streaming(lookahead_samples=self.left_trim)

    def _overlap_output(self, full: torch.Tensor, frames: int) -> torch.Tensor:
        """Cut T * stride samples from the full transposed-conv output `full` (bias-free)."""
        length = frames * self.stride_samples
        if not self.streaming_enabled:
            return full.narrow(2, self.left_trim, length)
        cache = self._stream_state(full)
        if cache is not None:
            overlap = cache.size(-1)
            rest = full.narrow(2, overlap, full.size(2) - overlap)
            full = torch.cat([full.narrow(2, 0, overlap) + cache, rest], dim=-1)
        self.stream_cache = full.narrow(2, length, full.size(2) - length).detach()
        return full.narrow(2, 0, length)


class CachedConv1d(nn.Conv1d, InputCache):
    """A Conv1d mapping T samples to T / stride frames; streams exactly when causal.

    Causal: frame j sees input up to sample j * stride + stride - 1 (the end of its block).
    Streaming, an ungrouped conv runs as one matrix product (`conv1d_by_matmul`) and a
    depthwise one as a sum of shifted products (`depthwise_taps`), the weight reshaped once
    per stream.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = True,
        causal: bool = False,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            dilation=dilation,
            groups=groups,
            bias=bias,
        )
        self.causal = causal
        window = dilation * (kernel_size - 1) + 1
        self._setup_input_cache(window, stride, causal, type(self).__name__)
        # The streaming paths' weights, empty when unused: the matmul path's (C_out, K * C_in),
        # a depthwise conv's taps (K, C, 1), and either's bias (C_out, 1).
        self.register_buffer("stream_matrix", torch.zeros(0), persistent=False)
        self.register_buffer("stream_taps", torch.zeros(0), persistent=False)
        self.register_buffer("stream_bias", torch.zeros(0), persistent=False)

    def prepare_streaming(self) -> None:
        by_matmul = self.streaming_enabled and self.groups == 1
        depthwise = self.streaming_enabled and self.groups == self.in_channels == self.out_channels
        depthwise = depthwise and self.stride[0] == 1
        empty = self.weight.new_zeros(0)
        self.stream_matrix = conv_matrix(self.weight) if by_matmul else empty
        self.stream_taps = self.weight.detach().permute(2, 0, 1) if depthwise else empty
        column = bias_column(self.bias)
        fast = by_matmul or depthwise
        self.stream_bias = column if fast and column is not None else empty

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        windowed = self._window_input(x)
        if windowed is None:
            return x.new_zeros(x.size(0), self.out_channels, 0)
        if self.streaming_enabled:
            bias: torch.Tensor | None = None
            if self.stream_bias.numel() > 0:
                bias = self.stream_bias
            if self.stream_taps.numel() > 0:
                return depthwise_taps(windowed, self.stream_taps, bias, self.dilation[0])
            if self.stream_matrix.numel() > 0:
                return conv1d_by_matmul(
                    windowed, self.stream_matrix, bias, self.stride[0], self.dilation[0]
                )
        return F.conv1d(
            windowed, self.weight, self.bias, self.stride, [0], self.dilation, self.groups
        )


class CachedConvTranspose1d(nn.ConvTranspose1d, OutputOverlap):
    """A ConvTranspose1d mapping T frames to T * stride samples; streams exactly when causal.

    Causal: output sample n depends only on frames j with j * stride <= n.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        groups: int = 1,
        bias: bool = True,
        causal: bool = False,
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride=stride, groups=groups, bias=bias
        )
        self.causal = causal
        self._setup_output_overlap(kernel_size, stride, causal, type(self).__name__)
        # The matmul path's weight (C_out * K, C_in); empty when unused.
        self.register_buffer("stream_matrix", torch.zeros(0), persistent=False)

    def prepare_streaming(self) -> None:
        by_matmul = self.streaming_enabled and self.groups == 1
        empty = self.weight.new_zeros(0)
        self.stream_matrix = conv_transpose_matrix(self.weight) if by_matmul else empty

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = x.size(-1)
        if frames == 0:
            return x.new_zeros(x.size(0), self.out_channels, 0)
        # Bias is added after the overlap-add, otherwise overlapping samples would get it twice.
        if self.streaming_enabled and self.stream_matrix.numel() > 0:
            full = conv_transpose1d_by_matmul(
                x, self.stream_matrix, self.stride[0], self.kernel_size[0]
            )
        else:
            full = F.conv_transpose1d(x, self.weight, None, self.stride, [0], [0], self.groups)
        out = self._overlap_output(full, frames)
        bias = self.bias
        if bias is not None:
            out = out + bias[:, None]
        return out


def streamable_layers(module: nn.Module) -> Iterator[Streamable]:
    """Every streaming-capable layer inside `module` (including itself)."""
    for child in module.modules():
        if isinstance(child, Streamable):
            yield child


def set_streaming(module: nn.Module, enabled: bool = True) -> None:
    """Switch streaming on or off for every cached layer of this instance; resets their state.

    Raises ConfigError (and changes nothing) if a layer looks ahead and so cannot stream.
    """
    layers = list(streamable_layers(module))
    if enabled:
        for layer in layers:
            if layer.lookahead_samples > 0:
                layer.set_streaming(True)  # raises with the layer's name
    for layer in layers:
        layer.set_streaming(enabled)


def reset_streaming_state(module: nn.Module) -> None:
    """Forget every cached context inside `module`, e.g. before streaming a new signal."""
    for layer in streamable_layers(module):
        layer.reset_streaming_state()


def share_reset_counter(module: nn.Module) -> torch.Tensor:
    """One `stream_epoch` counter for every cached layer inside `module`: bumping it in place
    (`counter.add_(1)`) resets them all on their next call, also in a scripted copy. Call it
    after `.to()`, which gives every buffer its own copy."""
    counter = torch.zeros(1, dtype=torch.long)
    for layer in streamable_layers(module):
        layer.stream_epoch = counter.to(layer.stream_cache.device)
        counter = layer.stream_epoch
    return counter


def is_streaming(module: nn.Module) -> bool:
    """True when any cached layer inside `module` is streaming."""
    return any(layer.streaming_enabled for layer in streamable_layers(module))
