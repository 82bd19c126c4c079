"""TorchScript twins of the latent priors (GRU and Transformer) for the exported model.

A twin holds the trained prior's layers and keeps its recurrent state (the GRU's hidden tensor,
the Transformer's sliding key/value cache and position) in buffers and attributes, so one call
continues the previous one. `forward(z, temperature)` takes VAE latents (B, D, m) and returns
(B, D, m): output frame t is drawn from the prior's prediction after input frames 0..t, i.e.
the frame that follows each input frame. Fed one frame at a time with its own output, it dreams.

Sampling repeats `LatentPrior.sample` operation for operation on the global torch generator, so
under the same `torch.manual_seed` a twin draws exactly what the Python prior draws.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from helius.models.prior import GRUPrior, LatentPrior, TransformerPrior
from helius.nn.attention import TransformerBlock, empty_cache


def sample_bins(logits: torch.Tensor, temperature: float, bins: int) -> torch.Tensor:
    """Standardised values (..., D) from logits (..., D, bins), as `LatentPrior.sample` does."""
    if temperature <= 0:
        index = logits.argmax(-1)
        centre = ((index.float() + 0.5) / bins).clamp(1e-4, 1 - 1e-4)
        return math.sqrt(2.0) * torch.erfinv(2 * centre - 1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    flat = probs.reshape(-1, bins)
    shape = probs.shape[:-1]
    index = torch.multinomial(flat, 1).view(shape)
    position = torch.rand(shape, device=index.device)
    quantile = ((index.float() + position) / bins).clamp(1e-4, 1 - 1e-4)
    return math.sqrt(2.0) * torch.erfinv(2 * quantile - 1)


class _ScriptablePrior(nn.Module):
    """Shared part: standardisation, input projection, output head, sampling, batch tracking."""

    def __init__(self, prior: LatentPrior, batch_size: int) -> None:
        super().__init__()
        self.latent_dim = prior.latent_dim
        self.bins = prior.bins
        self.batch_size = batch_size
        self.register_buffer("latent_mean", prior.latent_mean.detach().clone())
        self.register_buffer("latent_std", prior.latent_std.detach().clone())
        self.input = prior.input
        self.head = prior.head

    def forward(self, z: torch.Tensor, temperature: float) -> torch.Tensor:
        if z.size(0) != self.batch_size:
            self.batch_size = z.size(0)
            self.reset()
        frames = ((z.transpose(1, 2) - self.latent_mean) / self.latent_std).contiguous()
        logits = self.head(self.core(self.input(frames)))
        logits = logits.view(z.size(0), z.size(2), self.latent_dim, self.bins)
        values = sample_bins(logits, temperature, self.bins)
        return (values * self.latent_std + self.latent_mean).transpose(1, 2).contiguous()

    def core(self, hidden: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.jit.export
    def reset(self) -> None:
        raise NotImplementedError


class ScriptableGRUPrior(_ScriptablePrior):
    def __init__(self, prior: GRUPrior, batch_size: int = 1) -> None:
        super().__init__(prior, batch_size)
        self.gru = prior.gru
        self.register_buffer(
            "hidden", torch.zeros(prior.gru.num_layers, batch_size, prior.gru.hidden_size)
        )

    def core(self, hidden: torch.Tensor) -> torch.Tensor:
        out, self.hidden = self.gru(hidden, self.hidden)
        return out

    @torch.jit.export
    def reset(self) -> None:
        self.hidden = self.hidden.new_zeros(
            self.hidden.size(0), self.batch_size, self.hidden.size(2)
        )


class _CachedBlock(nn.Module):
    """A prior's `TransformerBlock` with its key/value cache (at most context_frames - 1
    frames) kept in buffers between calls; the block itself runs unchanged."""

    def __init__(self, block: TransformerBlock, context_frames: int, batch_size: int) -> None:
        super().__init__()
        self.block = block
        self.context_frames = context_frames
        attention = block.attention
        empty = empty_cache(
            batch_size, attention.heads, attention.head_width, block.mlp_norm.weight
        )
        self.register_buffer("keys", empty)
        self.register_buffer("values", empty.clone())

    def forward(self, x: torch.Tensor, offset: int) -> torch.Tensor:
        x, self.keys, self.values = self.block(
            x, self.keys, self.values, offset, self.context_frames
        )
        return x

    @torch.jit.export
    def reset_batch(self, batch_size: int) -> None:
        shape = [batch_size, self.keys.size(1), 0, self.keys.size(3)]
        self.keys = self.keys.new_zeros(shape)
        self.values = self.values.new_zeros(shape)


class ScriptableTransformerPrior(_ScriptablePrior):
    def __init__(self, prior: TransformerPrior, batch_size: int = 1) -> None:
        super().__init__(prior, batch_size)
        self.blocks = nn.ModuleList(
            _CachedBlock(block, prior.context_frames, batch_size) for block in prior.blocks
        )
        self.norm = prior.norm
        self.offset = 0

    def core(self, hidden: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            hidden = block(hidden, self.offset)
        self.offset += hidden.size(1)
        return self.norm(hidden)

    @torch.jit.export
    def reset(self) -> None:
        for block in self.blocks:
            block.reset_batch(self.batch_size)
        self.offset = 0


def scriptable_prior(prior: LatentPrior, batch_size: int = 1) -> _ScriptablePrior:
    """The TorchScript twin of a trained prior (set to eval, frozen; shares its weights)."""
    prior.eval().requires_grad_(False)  # a host's calls must not build autograd graphs
    if isinstance(prior, GRUPrior):
        return ScriptableGRUPrior(prior, batch_size)
    if isinstance(prior, TransformerPrior):
        return ScriptableTransformerPrior(prior, batch_size)
    raise TypeError(f"no TorchScript twin for the prior {type(prior).__name__}")
