"""Latent priors: autoregressive models of the VAE's latent sequences (GRU or Transformer).

Each latent dimension is standardised with statistics of the training latents, then cut into
`bins` equal-probability bins of the standard normal (RAVE's quantized-normal idea). Given
the past frames, the prior predicts a categorical distribution over the bins of every
dimension of the next frame (dimensions independent given the past), so sampling at a
temperature gives varied yet coherent sequences, and the validation score is an honest
negative log-likelihood in nats per frame.

Both priors share one interface that carries state, so training can run long sequences in
chunks (state detached between chunks) and generation runs one frame at a time:
    logits, state = prior(frames, state)      frames (B, T, D) standardised; logits (B, T, D, bins)
The GRU's state is its hidden tensor; the Transformer's is a key/value cache (rotary position
embeddings, so a sliding window of `context_frames` keeps working for any length).

A host streams with `continue_stream(z, temperature)`, which keeps that state in the prior's
own non-persistent buffers and compiles with TorchScript: `helius export` scripts the prior
itself (its `forward`, whose state is any Python value, is left out of the script).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from helius.config import PriorConfig
from helius.nn.attention import TransformerBlock, empty_cache

PriorState = Any  # GRU: Tensor (layers, B, H); Transformer: list of (keys, values) + offset


class QuantizedNormal:
    """Equal-probability bins of N(0, 1): bin k holds the values with CDF in [k/K, (k+1)/K)."""

    def __init__(self, bins: int) -> None:
        self.bins = bins
        quantiles = torch.arange(1, bins, dtype=torch.float64) / bins
        self.edges = (math.sqrt(2.0) * torch.erfinv(2 * quantiles - 1)).float()

    def to_bins(self, values: torch.Tensor) -> torch.Tensor:
        return torch.bucketize(values, self.edges.to(values.device))

    def from_bins(self, bins: torch.Tensor, generator: torch.Generator | None = None):
        """A value drawn uniformly in probability inside each bin (so its law is N(0, 1))."""
        return values_in_bins(bins, self.bins, generator)


def values_in_bins(
    bins: torch.Tensor, count: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A value drawn uniformly in probability inside each of `count` equal-probability bins."""
    position = torch.rand(bins.shape, generator=generator, device=bins.device)
    # Keep away from 0 and 1, where the inverse CDF is infinite.
    quantile = ((bins.float() + position) / count).clamp(1e-4, 1 - 1e-4)
    return math.sqrt(2.0) * torch.erfinv(2 * quantile - 1)


class LatentPrior(nn.Module):
    """The shared part: standardisation, bins, input projection, output head and sampling."""

    def __init__(self, config: PriorConfig, latent_dim: int) -> None:
        super().__init__()
        self.config = config
        self.latent_dim = latent_dim
        self.bins = config.bins
        self.quantizer = QuantizedNormal(config.bins)
        self.register_buffer("latent_mean", torch.zeros(latent_dim))
        self.register_buffer("latent_std", torch.ones(latent_dim))
        self.input = nn.Linear(latent_dim, config.hidden_size)
        self.head = nn.Linear(config.hidden_size, latent_dim * config.bins)

    # ---- data space <-> model space --------------------------------------------------------

    @torch.no_grad()
    def set_statistics(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Per-dimension mean and std of the training latents (std floored to stay finite)."""
        self.latent_mean.copy_(mean)
        self.latent_std.copy_(std.clamp(min=1e-3))

    def standardise(self, latents: torch.Tensor) -> torch.Tensor:
        """VAE latents (B, D, T) -> standardised frames (B, T, D)."""
        return ((latents.transpose(1, 2) - self.latent_mean) / self.latent_std).contiguous()

    def restore(self, frames: torch.Tensor) -> torch.Tensor:
        """Standardised frames (B, T, D) -> VAE latents (B, D, T)."""
        return (frames * self.latent_std + self.latent_mean).transpose(1, 2).contiguous()

    # ---- the model -------------------------------------------------------------------------

    def core(self, hidden: torch.Tensor, state: PriorState) -> tuple[torch.Tensor, PriorState]:
        raise NotImplementedError

    def stream_core(self, hidden: torch.Tensor) -> torch.Tensor:
        """`core` with the state kept in this prior's buffers (a new batch size starts anew)."""
        raise NotImplementedError

    @torch.jit.export
    def reset_stream(self) -> None:
        """Forget the state `continue_stream` keeps: the next call starts a new sequence."""
        raise NotImplementedError

    @torch.jit.export
    def continue_stream(self, latents: torch.Tensor, temperature: float) -> torch.Tensor:
        """VAE latents (B, D, m) -> (B, D, m): frame t is sampled after input frames 0..t (the
        frame that follows each), continuing the previous call. Fed its own output frame by
        frame, it dreams."""
        logits = self._logits(self.stream_core(self.input(self.standardise(latents))))
        return self.restore(self.sample(logits, temperature))

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Hidden frames (B, T, H) -> logits (B, T, D, bins)."""
        logits = self.head(hidden)
        return logits.view(hidden.size(0), hidden.size(1), self.latent_dim, self.bins)

    @torch.jit.unused
    def forward(
        self, frames: torch.Tensor, state: PriorState = None, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, PriorState]:
        """Standardised frames (B, T, D) -> next-frame logits (B, T, D, bins) and new state.

        With `targets` (the frames that follow, (B, T, D)) it returns their mean negative
        log-likelihood in nats per frame instead of the logits: training goes through forward
        so that DDP sees every call.
        """
        hidden, state = self.core(self.input(frames), state)
        logits = self._logits(hidden)
        if targets is None:
            return logits, state
        return self.nll_of(logits, targets), state

    def nll_of(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean NLL (nats per frame, summed over dimensions) of targets (B, T, D)."""
        target_bins = self.quantizer.to_bins(targets.contiguous())
        per_value = F.cross_entropy(
            logits.reshape(-1, self.bins), target_bins.reshape(-1), reduction="none"
        )
        return per_value.view(targets.shape).sum(-1).mean()

    def sample(
        self,
        logits: torch.Tensor,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Standardised values (..., D) drawn from logits (..., D, bins) at a temperature.

        Temperature 0 takes the most likely bin's centre (deterministic).
        """
        if temperature <= 0:
            bins = logits.argmax(-1)
            centre = ((bins.float() + 0.5) / self.bins).clamp(1e-4, 1 - 1e-4)
            return math.sqrt(2.0) * torch.erfinv(2 * centre - 1)
        probs = torch.softmax(logits.float() / temperature, dim=-1)
        flat = probs.reshape(-1, self.bins)
        bins = torch.multinomial(flat, 1, generator=generator).view(probs.shape[:-1])
        return values_in_bins(bins, self.bins, generator)

    def detach_state(self, state: PriorState) -> PriorState:
        raise NotImplementedError


class GRUPrior(LatentPrior):
    """A multi-layer GRU over standardised latent frames (the seed's prior)."""

    def __init__(self, config: PriorConfig, latent_dim: int) -> None:
        super().__init__(config, latent_dim)
        self.gru = nn.GRU(
            config.hidden_size,
            config.hidden_size,
            num_layers=config.num_layers,
            batch_first=True,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
        )
        self.register_buffer("stream_hidden", torch.zeros(0), persistent=False)

    def core(self, hidden: torch.Tensor, state: PriorState) -> tuple[torch.Tensor, PriorState]:
        return self.gru(hidden, state)

    def stream_core(self, hidden: torch.Tensor) -> torch.Tensor:
        state: torch.Tensor | None = None
        if self.stream_hidden.dim() == 3 and self.stream_hidden.size(1) == hidden.size(0):
            state = self.stream_hidden
        out, self.stream_hidden = self.gru(hidden, state)
        return out

    @torch.jit.export
    def reset_stream(self) -> None:
        self.stream_hidden = self.stream_hidden.new_zeros(0)

    def detach_state(self, state: PriorState) -> PriorState:
        return None if state is None else state.detach()


class TransformerPrior(LatentPrior):
    """A causal Transformer (`nn.attention`'s blocks) with a sliding key/value cache."""

    def __init__(self, config: PriorConfig, latent_dim: int) -> None:
        super().__init__(config, latent_dim)
        if config.hidden_size % (2 * config.heads):
            raise ValueError(
                f"prior.hidden_size ({config.hidden_size}) must be a multiple of "
                f"2 x prior.heads ({config.heads}) for rotary embeddings"
            )
        self.blocks = nn.ModuleList(
            TransformerBlock(config.hidden_size, config.heads, config.dropout)
            for _ in range(config.num_layers)
        )
        self.norm = nn.LayerNorm(config.hidden_size)
        self.context_frames = config.context_frames
        self.heads = config.heads
        self.head_width = config.hidden_size // config.heads
        # continue_stream's caches, every block's stacked: (layers, B, heads, frames, width).
        self.register_buffer("stream_keys", torch.zeros(0), persistent=False)
        self.register_buffer("stream_values", torch.zeros(0), persistent=False)
        self.stream_offset = 0

    def core(self, hidden: torch.Tensor, state: PriorState) -> tuple[torch.Tensor, PriorState]:
        if state is None:
            empty = self._empty_caches(hidden)
            state = (list(zip(empty, empty, strict=True)), 0)
        caches, offset = state
        keys, values = [k for k, _ in caches], [v for _, v in caches]
        hidden, keys, values = self._attend(hidden, keys, values, offset)
        return hidden, (list(zip(keys, values, strict=True)), offset + hidden.shape[1])

    def stream_core(self, hidden: torch.Tensor) -> torch.Tensor:
        if self.stream_keys.dim() == 5 and self.stream_keys.size(1) == hidden.size(0):
            keys, values = self.stream_keys.unbind(0), self.stream_values.unbind(0)
            offset = self.stream_offset
        else:
            keys = values = self._empty_caches(hidden)
            offset = 0
        hidden, keys, values = self._attend(hidden, list(keys), list(values), offset)
        self.stream_keys, self.stream_values = torch.stack(keys), torch.stack(values)
        self.stream_offset = offset + hidden.size(1)
        return hidden

    @torch.jit.export
    def reset_stream(self) -> None:
        self.stream_keys = self.stream_keys.new_zeros(0)
        self.stream_values = self.stream_values.new_zeros(0)
        self.stream_offset = 0

    def _empty_caches(self, like: torch.Tensor) -> list[torch.Tensor]:
        empty = empty_cache(like.size(0), self.heads, self.head_width, like)
        return [empty for _ in self.blocks]

    def _attend(
        self,
        hidden: torch.Tensor,
        keys: list[torch.Tensor],
        values: list[torch.Tensor],
        offset: int,
    ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """The blocks over hidden (B, T, H) given each block's cache; returns the new caches."""
        new_keys: list[torch.Tensor] = []
        new_values: list[torch.Tensor] = []
        for index, block in enumerate(self.blocks):
            hidden, block_keys, block_values = block(
                hidden, keys[index], values[index], offset, self.context_frames
            )
            new_keys.append(block_keys)
            new_values.append(block_values)
        return self.norm(hidden), new_keys, new_values

    def detach_state(self, state: PriorState) -> PriorState:
        if state is None:
            return None
        caches, offset = state
        return [(k.detach(), v.detach()) for k, v in caches], offset


def build_prior(config: PriorConfig, latent_dim: int) -> LatentPrior:
    """The prior that `config.kind` names, for latents of `latent_dim` dimensions."""
    if config.kind == "gru":
        return GRUPrior(config, latent_dim)
    if config.kind == "transformer":
        return TransformerPrior(config, latent_dim)
    raise ValueError(f"unknown prior kind {config.kind!r}")
