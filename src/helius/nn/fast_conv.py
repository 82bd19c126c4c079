"""Convolutions for streaming calls, which see a few frames at a time (`streaming.py`).

For such short inputs PyTorch's CPU convolution falls back to per-channel loops
(slow_conv_dilated2d, slow_conv_transpose2d) that cost ~10x the arithmetic; one matrix product
over stacked shifted views does the same sums quickly. All of these compile with TorchScript.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def conv_matrix(weight: torch.Tensor) -> torch.Tensor:
    """A conv1d weight (C_out, C_in, K) as the (C_out, K * C_in) matrix `conv1d_by_matmul` takes."""
    return weight.detach().permute(0, 2, 1).reshape(weight.shape[0], -1)


def conv_transpose_matrix(weight: torch.Tensor) -> torch.Tensor:
    """A conv_transpose1d weight (C_in, C_out, K) as the (C_out * K, C_in) matrix
    `conv_transpose1d_by_matmul` takes."""
    return weight.detach().reshape(weight.shape[0], -1).t().contiguous()


def bias_column(bias: torch.Tensor | None) -> torch.Tensor | None:
    """A conv bias (C_out,) as the (C_out, 1) column the matmul convolutions add."""
    return None if bias is None else bias.detach().reshape(-1, 1)


# Written for few operations per call (each costs ~1 us of dispatch, more than the arithmetic
# on a few frames): one strided view stacks the taps, one matrix product applies all of them,
# and batch 1 (every stream) skips the batched product.


def stacked_taps(x: torch.Tensor, kernel: int, stride: int, dilation: int) -> torch.Tensor:
    """The columns a (C_out, K * C_in) conv matrix multiplies, from unpadded x (B, C_in, L):
    (K * C_in, frames) for a batch of 1, else (B, K * C_in, frames)."""
    batch, channels, length = x.size(0), x.size(1), x.size(2)
    if kernel == 1 and stride == 1:
        return x[0] if batch == 1 else x
    frames = (length - dilation * (kernel - 1) - 1) // stride + 1
    s = x.stride()
    # Tap k of frame f is sample f * stride + k * dilation: a (B, K, C, frames) view, tap-major
    # like the matrix's columns, copied once into the stacked columns.
    if batch == 1:
        taps = x.as_strided([kernel, channels, frames], [dilation * s[2], s[1], stride * s[2]])
        return taps.reshape(kernel * channels, frames)
    taps = x.as_strided(
        [batch, kernel, channels, frames], [s[0], dilation * s[2], s[1], stride * s[2]]
    )
    return taps.reshape(batch, kernel * channels, frames)


def apply_matrix(
    matrix: torch.Tensor, stacked: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """matrix @ stacked (+ a (C_out, 1) bias column); 2-D stacked (batch 1) takes one addmm."""
    if stacked.dim() == 2:
        return torch.mm(matrix, stacked) if bias is None else torch.addmm(bias, matrix, stacked)
    out = torch.matmul(matrix, stacked)
    return out if bias is None else out + bias


def conv1d_by_matmul(
    x: torch.Tensor,
    matrix: torch.Tensor,
    bias: torch.Tensor | None,
    stride: int,
    dilation: int,
) -> torch.Tensor:
    """conv1d without padding of x (B, C_in, L) by a (C_out, K * C_in) weight matrix and a
    (C_out, 1) bias column (`conv_matrix`, `bias_column`)."""
    kernel = matrix.size(1) // x.size(1)
    out = apply_matrix(matrix, stacked_taps(x, kernel, stride, dilation), bias)
    return out.unsqueeze(0) if out.dim() == 2 else out


def conv_transpose1d_by_matmul(
    x: torch.Tensor, matrix: torch.Tensor, stride: int, kernel: int
) -> torch.Tensor:
    """conv_transpose1d without padding or bias of x (B, C_in, T) by a (C_out * K, C_in)
    weight matrix (`conv_transpose_matrix`)."""
    batch, frames = x.size(0), x.size(2)
    # Every input frame spreads W^T x_t over K output samples; fold overlap-adds them.
    columns = torch.mm(matrix, x[0]) if batch == 1 else torch.matmul(matrix, x)
    length = (frames - 1) * stride + kernel
    folded = F.fold(columns, (1, length), kernel_size=(1, kernel), stride=(1, stride))
    return folded.view(batch, -1, length)


def depthwise_taps(
    x: torch.Tensor, taps: torch.Tensor, bias: torch.Tensor | None, dilation: int
) -> torch.Tensor:
    """A depthwise conv1d (stride 1) without padding of x (B, C, L) by taps (K, C, 1), the
    weight (C, 1, K) permuted: K multiply-adds of shifted views, where PyTorch's depthwise conv
    costs ~100 us per call on a few frames."""
    frames = x.size(2) - dilation * (taps.size(0) - 1)
    out = taps[0] * x.narrow(2, 0, frames)  # narrow: one op where [:, :, a:b] is three
    for tap in range(1, taps.size(0)):
        out = torch.addcmul(out, taps[tap], x.narrow(2, tap * dilation, frames))
    return out if bias is None else out + bias
