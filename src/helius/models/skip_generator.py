"""Conv blocks of the clip VAE and its SkipGenerator, which predicts U-Net skips from z alone.

A U-Net decoder trained on the encoder's skips leans on them, and they do not exist when one
decodes a latent that came from no audio (sampling, morphing, sliders). The SkipGenerator
learns to produce every skip feature map from z, so the decoder can always be fed from z.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_NEGATIVE_SLOPE = 0.2


def activation() -> nn.Module:
    return nn.LeakyReLU(_NEGATIVE_SLOPE)


def act(x: torch.Tensor) -> torch.Tensor:
    """The functional form of `activation()`, for forward methods."""
    return F.leaky_relu(x, _NEGATIVE_SLOPE)


class ResBlock1d(nn.Module):
    """x + conv(act(conv(act(x)))): two kernel-3 convs (the first dilated), same length."""

    def __init__(self, channels: int, dilation: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            activation(),
            nn.Conv1d(channels, channels, 3, dilation=dilation, padding=dilation),
            activation(),
            nn.Conv1d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def res_stack(channels: int, dilations: tuple[int, ...]) -> nn.Sequential:
    return nn.Sequential(*(ResBlock1d(channels, dilation) for dilation in dilations))


def downsample(in_channels: int, out_channels: int, stride: int) -> nn.Conv1d:
    """Strided conv whose output is exactly length / stride for lengths divisible by stride."""
    # kernel 2s + 1 with padding s gives floor((L - 1) / s) + 1 = L / s for any stride s.
    return nn.Conv1d(in_channels, out_channels, 2 * stride + 1, stride=stride, padding=stride)


def upsample(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """Transposed conv whose output is exactly length x stride (kernel 2 x stride).

    Cheaper than nearest-neighbour upsampling followed by a conv at the high rate (the
    decoder's full-rate stage dominates the cost); the kernel is twice the stride so every
    output sample gets two overlapping contributions, which tames the checkerboard pattern.
    """
    if stride == 1:
        return nn.Conv1d(in_channels, out_channels, 3, padding=1)
    # (L - 1) s - 2 p + 2 s + output_padding = L s needs 2 p - output_padding = s.
    padding = (stride + 1) // 2
    return nn.ConvTranspose1d(
        in_channels,
        out_channels,
        2 * stride,
        stride=stride,
        padding=padding,
        output_padding=2 * padding - stride,
    )


class LatentToSequence(nn.Module):
    """z (B, D) -> (B, channels, length): an MLP to a few channels, then a 1x1 conv to many.

    Going through `narrow_channels` keeps the Linear small (D x hidden + hidden x narrow x
    length) instead of a D x channels x length matrix.
    """

    def __init__(
        self, latent_dim: int, hidden: int, narrow_channels: int, channels: int, length: int
    ) -> None:
        super().__init__()
        self.narrow_channels = narrow_channels
        self.length = length
        self.mlp = nn.Sequential(
            nn.Linear(latent_dim, hidden), activation(), nn.Linear(hidden, narrow_channels * length)
        )
        self.widen = nn.Conv1d(narrow_channels, channels, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        narrow = self.mlp(z).view(z.shape[0], self.narrow_channels, self.length)
        return self.widen(act(narrow))


class SkipGenerator(nn.Module):
    """Every encoder skip, same shapes, from z alone.

    `skip_channels[k]` is the width of skip k (shallowest first, as the encoder returns them);
    `strides[k]` is the factor between skip k and the next deeper level (skip k + 1 or, for
    the deepest, the bottleneck of `bottleneck_length` samples), which fixes every length. A
    trunk mirrors the decoder (expand z, then upsample level by level) at `width_ratio` of the
    skip widths, and a 1x1 conv reads each level's skip off it. No skips: no parameters, [].
    """

    def __init__(
        self,
        latent_dim: int,
        hidden: int,
        narrow_channels: int,
        skip_channels: list[int],
        strides: list[int],
        bottleneck_length: int,
        width_ratio: float = 0.5,
    ) -> None:
        super().__init__()
        if len(strides) != len(skip_channels):
            raise ValueError("need one stride per skip level")
        widths = [max(4, round(c * width_ratio)) for c in skip_channels]
        self.stages = nn.ModuleList()
        self.heads = nn.ModuleList()
        # A one-stage model has no skips; unused parameters would trip DDP.
        self.expand = (
            LatentToSequence(latent_dim, hidden, narrow_channels, widths[-1], bottleneck_length)
            if widths
            else None
        )
        in_width = widths[-1] if widths else 0
        # Built deepest first, the order in which the trunk runs.
        for level in reversed(range(len(skip_channels))):
            self.stages.append(
                nn.Sequential(
                    upsample(in_width, widths[level], strides[level]),
                    res_stack(widths[level], (1,)),
                )
            )
            self.heads.append(nn.Conv1d(widths[level], skip_channels[level], 1))
            in_width = widths[level]

    def forward(self, z: torch.Tensor) -> list[torch.Tensor]:
        """Skips for z (B, D), shallowest first."""
        if self.expand is None:
            return []
        h = self.expand(z)
        skips = []
        for stage, head in zip(self.stages, self.heads, strict=True):
            h = stage(h)
            skips.append(head(act(h)))
        return skips[::-1]
