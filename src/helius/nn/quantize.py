"""Int8 weights for streaming on a CPU: a copy of a model whose weight layers are quantized.

A streaming call sees one latent frame (a few STFT frames), so its matrix products multiply
weights by a handful of columns: the time goes into reading the weights from memory (the default
wave VAE reads 21 MB of float32 weights per 2048-sample block), not into arithmetic. Storing the
weights as int8 (per-tensor scale, activations quantized on the fly per call: PyTorch's dynamic
quantization) reads a quarter of the bytes. Every nn.Linear and every ungrouped `CachedConv1d`
is quantized (a conv as a linear map of each frame's stacked taps); depthwise convs, norms and
the STFT stay float32. On the default model that is about 4x the real-time factor at block 2048
(bench/stream.py), and on a trained checkpoint the output moves by about -38 dB with the same
MR-STFT distance to the input to three decimals (docs/core.md, section 5).

CPU only (PyTorch's fbgemm/qnnpack kernels); training and CUDA keep float32 / bf16 autocast.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from helius.errors import ConfigError
from helius.nn.fast_conv import conv_matrix, stacked_taps
from helius.nn.streaming import CachedConv1d

PRECISIONS = ("float32", "int8")


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


class Int8CachedConv1d(CachedConv1d):
    """A `CachedConv1d` (ungrouped) whose weight is an int8 linear layer over its stacked taps.

    Offline and streaming both run that product (a conv of T frames is a (K * C_in) -> C_out
    linear map of each frame's taps), so the two agree as they do in float32, up to the
    per-call rounding of the activations.
    """

    def __init__(self, conv: CachedConv1d) -> None:
        super().__init__(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size[0],
            stride=conv.stride[0],
            dilation=conv.dilation[0],
            bias=conv.bias is not None,
            causal=conv.causal,
        )
        self.load_state_dict(conv.state_dict())
        matrix = conv_matrix(conv.weight)
        linear = nn.Linear(matrix.shape[1], matrix.shape[0], bias=conv.bias is not None)
        with torch.no_grad():
            linear.weight.copy_(matrix)
            if conv.bias is not None:
                linear.bias.copy_(conv.bias)
        self.taps = conv.kernel_size[0]
        self.int8 = _quantize(nn.Sequential(linear))[0]  # quantize_dynamic swaps children

    def prepare_streaming(self) -> None:
        """Nothing to prepare: the int8 layer is the streaming weight."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        windowed = self._window_input(x)
        if windowed is None:
            return x.new_zeros(x.size(0), self.out_channels, 0)
        columns = stacked_taps(windowed, self.taps, self.stride[0], self.dilation[0])
        out = self.int8(columns.transpose(-1, -2)).transpose(-1, -2)
        return out.unsqueeze(0) if out.dim() == 2 else out


def _quantize(module: nn.Module) -> nn.Module:
    with warnings.catch_warnings():
        # PyTorch marks torch.ao's quantization as deprecated (its successor, torchao, is a
        # separate package); the pinned torch has it, and the tests check it still works.
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(module, {nn.Linear}, dtype=torch.qint8)


def int8_copy(model: nn.Module) -> nn.Module:
    """A copy of `model` (on the CPU, in eval mode) with every nn.Linear and every ungrouped
    `CachedConv1d` holding int8 weights."""
    if any(p.device.type != "cpu" for p in model.parameters()):
        raise ConfigError("int8 precision runs on the CPU only; move the model to the CPU first")
    quantized = _quantize(copy.deepcopy(model).eval())
    for name, module in list(quantized.named_modules()):
        if type(module) is CachedConv1d and module.groups == 1:
            parent, _, child = name.rpartition(".")
            setattr(quantized.get_submodule(parent), child, Int8CachedConv1d(module))
    if not quantized_layers(quantized):
        raise ConfigError(
            f"int8 precision quantizes linear layers and ungrouped convolutions, and "
            f"{type(model).__name__} has neither, so it would change nothing; use --precision "
            "float32"
        )
    return quantized


def quantized_layers(model: nn.Module) -> int:
    """How many layers of `model` hold int8 weights (an int8 conv counts once)."""
    dynamic = torch.ao.nn.quantized.dynamic.Linear
    return sum(isinstance(module, dynamic) for module in model.modules())
