"""Shared attention: rotary positions, causal and local masks, and a Transformer block whose
key/value cache goes in and comes out as plain tensors.

One implementation serves training (whole sequences, no cache), generation (a frame at a time
with the cache carried) and export (TorchScript compiles these modules as they are; a scripted
host keeps the cache in buffers). The latent prior uses it now; the editor's and Staria's
Transformers are meant to use the same block.

Positions are absolute, given by `offset` (the number of frames already seen), and enter
through rotary embeddings of queries and keys, so a sliding window of keys keeps working for
any length. `window` bounds how far back a query looks: query at position p sees keys in
(p - window, p]; `window <= 0` means no bound. `causal=False` lets every query see every
key of the current call (an encoder), and then the cache must be empty.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SelfAttention", "TransformerBlock", "attention_mask", "empty_cache", "rotary"]


def rotary(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Rotary position embedding of (B, heads, T, head_dim) at absolute `positions` (T,).

    Channel i of the first half and channel i of the second half form a pair rotated by
    position x base^(-i / half): the dot product of a rotated query and key depends
    on their positions only through their difference.
    """
    half = x.size(-1) // 2
    exponents = torch.arange(half, device=x.device, dtype=torch.float32) / half
    frequencies = torch.pow(base, -exponents)
    angles = positions.float()[:, None] * frequencies[None, :]
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    first, second = x[..., :half], x[..., half:]
    return torch.cat([first * cos - second * sin, first * sin + second * cos], dim=-1)


def attention_mask(
    queries: int, past: int, window: int, causal: bool, device: torch.device
) -> torch.Tensor:
    """(queries, past + queries) bool, True where query i (after `past` cached keys) may look.

    Causal: key j is seen when j <= past + i and, with window > 0, j > past + i - window.
    Not causal: every key, within the window on either side when window > 0.
    """
    query_pos = torch.arange(queries, device=device)[:, None] + past
    key_pos = torch.arange(past + queries, device=device)[None, :]
    if causal:
        allowed = key_pos <= query_pos
        if window > 0:
            allowed = allowed & (key_pos > query_pos - window)
        return allowed
    if window > 0:
        return (key_pos - query_pos).abs() < window
    return torch.ones(queries, past + queries, dtype=torch.bool, device=device)


def empty_cache(batch: int, heads: int, head_width: int, like: torch.Tensor) -> torch.Tensor:
    """A key or value cache holding no frames: (batch, heads, 0, head_width)."""
    return like.new_zeros(batch, heads, 0, head_width)


class SelfAttention(nn.Module):
    """Multi-head self-attention with rotary positions and an explicit key/value cache."""

    def __init__(self, width: int, heads: int, causal: bool = True) -> None:
        super().__init__()
        if width % (2 * heads):
            raise ValueError(
                f"attention width ({width}) must be a multiple of 2 x heads ({heads}) for "
                "rotary embeddings"
            )
        self.heads = heads
        self.head_width = width // heads
        self.causal = causal
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(
        self,
        x: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        offset: int,
        window: int,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, T, width) at absolute positions offset..offset+T-1 -> (y, keys, values).

        `keys`/`values` (B, heads, past, head_width) are the cached, already rotated keys and
        values of earlier frames (`empty_cache` for none); the returned ones append this
        call's frames and keep only what a later query can still see (the last window - 1).
        """
        batch, frames, width = x.size(0), x.size(1), x.size(2)
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q = q.view(batch, frames, self.heads, self.head_width).transpose(1, 2)
        k = k.view(batch, frames, self.heads, self.head_width).transpose(1, 2)
        v = v.view(batch, frames, self.heads, self.head_width).transpose(1, 2)
        positions = torch.arange(offset, offset + frames, device=x.device)
        q, k = rotary(q, positions), rotary(k, positions)
        past = keys.size(2)
        if past > 0 and not self.causal:
            raise ValueError("a non-causal attention cannot take a key/value cache")
        k = torch.cat([keys, k], dim=2)
        v = torch.cat([values, v], dim=2)
        mask = attention_mask(frames, past, window, self.causal, x.device)
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        y = self.out(attended.transpose(1, 2).reshape(batch, frames, width))
        if window > 0:  # the next query looks at most window - 1 frames back
            k, v = _last_frames(k, window - 1), _last_frames(v, window - 1)
        return y, k, v


def _last_frames(cache: torch.Tensor, frames: int) -> torch.Tensor:
    return cache[:, :, cache.size(2) - min(cache.size(2), frames) :]


class TransformerBlock(nn.Module):
    """Pre-norm self-attention and a 4x GELU MLP, each added back to the residual stream."""

    def __init__(self, width: int, heads: int, dropout: float = 0.0, causal: bool = True) -> None:
        super().__init__()
        self.attention_norm = nn.LayerNorm(width)
        self.attention = SelfAttention(width, heads, causal)
        self.mlp_norm = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width)
        )
        self.dropout = nn.Dropout(dropout)
        self._register_load_state_dict_pre_hook(_flat_attention_keys)

    def forward(
        self,
        x: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        offset: int,
        window: int,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """As `SelfAttention.forward`, for the whole block."""
        attended, keys, values = self.attention(
            self.attention_norm(x), keys, values, offset, window
        )
        x = x + self.dropout(attended)
        x = x + self.dropout(self.mlp(self.mlp_norm(x)))
        return x, keys, values


def _flat_attention_keys(state_dict: dict, prefix: str, *args) -> None:
    """Checkpoints from before this module named the projections `qkv`/`out` on the block."""
    for name in ("qkv", "out"):
        for tensor in ("weight", "bias"):
            old = f"{prefix}{name}.{tensor}"
            if old in state_dict:
                state_dict[f"{prefix}attention.{name}.{tensor}"] = state_dict.pop(old)
