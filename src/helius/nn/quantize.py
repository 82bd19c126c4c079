"""Int8 weights for streaming on a CPU: a copy of a model whose linear layers are quantized.

A streaming call sees one latent frame (a few STFT frames), so its matrix products multiply
weights by a handful of columns: the time goes into reading the weights from memory (the default
wave VAE reads 21 MB of float32 weights per 2048-sample block), not into arithmetic. Storing the
linear layers' weights as int8 (per-tensor scale, activations quantized on the fly: PyTorch's
dynamic quantization) reads a quarter of the bytes; the ConvNeXt blocks' two linear layers
hold 86 % of the default model's weights. Measured on the default model (bench/stream.py):
about twice the real-time factor at block 2048, and on a trained checkpoint the output differs
from the float32 one by about -40 dB, with the same MR-STFT distance to the input to three
decimals (the closing note of issue #13 has the figures).

CPU only (PyTorch's fbgemm/qnnpack kernels); training and CUDA keep float32 / bf16 autocast.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from helius.errors import ConfigError

PRECISIONS = ("float32", "int8")


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def int8_copy(model: nn.Module) -> nn.Module:
    """A copy of `model` (on the CPU, in eval mode) with every nn.Linear stored as int8."""
    if any(p.device.type != "cpu" for p in model.parameters()):
        raise ConfigError("int8 precision runs on the CPU only; move the model to the CPU first")
    with warnings.catch_warnings():
        # PyTorch marks torch.ao's quantization as deprecated (its successor, torchao, is a
        # separate package); the pinned torch has it, and the tests check it still works.
        warnings.simplefilter("ignore")
        quantized = torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(model).eval(), {nn.Linear}, dtype=torch.qint8
        )
    if not quantized_layers(quantized):
        raise ConfigError(
            "int8 precision quantizes linear layers and this model has no linear layers (the "
            "pqmf transform is all convolutions), so it would change nothing; use --precision "
            "float32 (int8 speeds up model.wave.transform: stft)"
        )
    return quantized


def quantized_layers(model: nn.Module) -> int:
    """How many layers of `model` hold int8 weights."""
    dynamic = torch.ao.nn.quantized.dynamic.Linear
    return sum(isinstance(module, dynamic) for module in model.modules())
