"""Streaming audio-to-audio transformation: blocks in, blocks out, through the causal wave VAE.

`StreamProcessor` is the engine behind `helius stream` (files) and `helius live` (sound card):
every call takes the next block of input (any size) and returns the same number of output
samples. Input is buffered up to whole latent frames, encoded with the streaming encoder,
transformed in latent space, and decoded with the streaming decoder, so the output lags the
input by a fixed `latency_samples` and, with no transformation, equals the offline
reconstruction of the whole signal delayed by that much.

The transformation chain, in order, per latent frame z (VAE space):
    z <- z * scale + bias                 (per dimension; `--scale`, `--bias`)
    z <- z + noise * N(0, 1)              (`--noise`)
    z <- (1 - A) z + A z_prior            (`--prior_mix A`, z_prior sampled from the prior
                                           given the input's past frames)
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from helius import progress
from helius.audio import io
from helius.errors import ConfigError
from helius.generate.export import streaming_engine
from helius.models.checkpoint import check_pair, load_prior, load_vae
from helius.models.prior import LatentPrior


@dataclass
class LatentTransform:
    """What to do to each latent frame; the defaults change nothing."""

    scale: Sequence[float] | float = 1.0
    bias: Sequence[float] | float = 0.0
    noise: float = 0.0
    prior_mix: float = 0.0
    temperature: float = 1.0
    seed: int = 0

    @property
    def is_identity(self) -> bool:
        return (
            np.all(np.asarray(self.scale) == 1.0)
            and np.all(np.asarray(self.bias) == 0.0)
            and self.noise == 0.0
            and self.prior_mix == 0.0
        )

    def per_dimension(self, values, latent_dim: int, name: str) -> torch.Tensor:
        array = np.atleast_1d(np.asarray(values, dtype=np.float32))
        if array.size == 1:
            array = np.repeat(array, latent_dim)
        if array.size != latent_dim:
            raise ConfigError(
                f"--{name} takes one value or {latent_dim} (one per latent dimension), "
                f"got {array.size}"
            )
        return torch.from_numpy(array)[None, :, None]


@dataclass
class StreamStats:
    blocks: int = 0
    samples: int = 0
    compute_seconds: float = 0.0
    worst_block_seconds: float = 0.0  # a running maximum: a live session may run for hours


class StreamProcessor:
    """Feed blocks of (channels, n) float32 audio; get (channels, n) blocks back."""

    def __init__(
        self,
        vae: nn.Module,
        transform: LatentTransform | None = None,
        prior: LatentPrior | None = None,
        precision: str = "float32",
    ) -> None:
        if not getattr(vae, "can_stream", False):
            raise ConfigError(
                "streaming needs a causal wave VAE (model.wave.causal: true); this checkpoint "
                "looks ahead and can only reconstruct offline (helius recon)"
            )
        self.vae = vae.eval()
        # Blocks run through the scripted model (what `helius export` writes): the same layers
        # as the Python model in streaming mode, 2-3x faster without Python between operations.
        # "int8" runs it with int8 weights (helius.nn.quantize): about 4x as fast on a CPU.
        self.engine = streaming_engine(self.vae, precision)
        self.transform = transform or LatentTransform()
        if self.transform.prior_mix and prior is None:
            raise ConfigError("--prior_mix needs a prior: pass --prior_ckpt")
        if not 0.0 <= self.transform.prior_mix <= 1.0:
            raise ConfigError(f"--prior_mix must be in [0, 1], got {self.transform.prior_mix}")
        self.prior = prior.eval() if prior is not None else None
        latent_dim = vae.latent_dim
        self.scale = self.transform.per_dimension(self.transform.scale, latent_dim, "scale")
        self.bias = self.transform.per_dimension(self.transform.bias, latent_dim, "bias")
        self.hop = int(vae.hop_samples)
        self.channels = int(vae.channels)
        self._identity = self.transform.is_identity
        self.stats = StreamStats()
        self.reset()

    @property
    def latency_samples(self) -> int:
        """Output lags input by this much: one frame of buffering plus the model's delay."""
        return self.hop + self.vae.output_delay_samples

    def reset(self) -> None:
        """Start a new stream: empty buffers, fresh model and prior state."""
        with torch.inference_mode():  # the engine's state tensors are inference tensors
            self.engine.reset()
        self._pending = np.zeros((self.channels, 0), np.float32)
        # One frame of silence ahead of the output, so every call can return a full block.
        self._ready = np.zeros((self.channels, self.hop), np.float32)
        self._prior_state = None
        self._prior_next: torch.Tensor | None = None
        self._generator = torch.Generator().manual_seed(self.transform.seed)
        torch.manual_seed(self.transform.seed)

    # Inference mode, not just no_grad: it skips autograd's bookkeeping on each of the engine's
    # ~1,000 small tensor operations per call (25 % faster at 512-sample blocks).
    @torch.inference_mode()
    def process(self, block: np.ndarray) -> np.ndarray:
        """The next len(block) output samples for the next input block."""
        started = time.perf_counter()
        block = np.asarray(block, dtype=np.float32)
        if block.ndim != 2 or block.shape[0] != self.channels:
            raise ValueError(f"expected ({self.channels}, n) audio, got {block.shape}")
        self._pending = np.concatenate([self._pending, block], axis=1)
        usable = self._pending.shape[1] // self.hop * self.hop
        if usable:
            x = torch.from_numpy(np.ascontiguousarray(self._pending[:, :usable]))[None]
            self._pending = self._pending[:, usable:]
            mu = self.engine.encode(x)
            decoded = self.engine.decode(self._transform(mu))[0].numpy()
            self._ready = np.concatenate([self._ready, decoded], axis=1)
        out = self._ready[:, : block.shape[1]]
        self._ready = self._ready[:, block.shape[1] :]
        elapsed = time.perf_counter() - started
        self.stats.blocks += 1
        self.stats.samples += block.shape[1]
        self.stats.compute_seconds += elapsed
        self.stats.worst_block_seconds = max(self.stats.worst_block_seconds, elapsed)
        return out

    def _transform(self, z: torch.Tensor) -> torch.Tensor:
        if self._identity:
            return z
        z = z * self.scale + self.bias
        if self.transform.noise:
            z = z + self.transform.noise * torch.randn(z.shape, generator=self._generator)
        if self.transform.prior_mix and self.prior is not None:
            z = self._mix_prior(z)
        return z

    def _mix_prior(self, z: torch.Tensor) -> torch.Tensor:
        """Blend each frame with the prior's guess of it from the input frames before it."""
        prior, mix = self.prior, self.transform.prior_mix
        frames = prior.standardise(z)  # (1, T, D)
        guesses = []
        for index in range(frames.shape[1]):
            # Before the first frame the prior has heard nothing: keep the input there.
            nothing_heard = self._prior_next is None
            guesses.append(frames[:, index] if nothing_heard else self._prior_next)
            logits, self._prior_state = prior(frames[:, index : index + 1], self._prior_state)
            self._prior_next = prior.sample(
                logits[:, -1], self.transform.temperature, self._generator
            )
        guessed = prior.restore(torch.stack(guesses, dim=1))
        return (1 - mix) * z + mix * guessed


@dataclass(frozen=True)
class StreamResult:
    output: Path
    seconds: float
    elapsed_seconds: float
    block_size: int
    latency_samples: int
    sample_rate: int
    # The whole path: reading and resampling the input, the model, writing the output.
    total_seconds: float = 0.0

    @property
    def realtime_factor(self) -> float:
        """Audio seconds per second spent in the model alone (what a live stream pays)."""
        return self.seconds / max(self.elapsed_seconds, 1e-9)

    @property
    def total_realtime_factor(self) -> float:
        """Audio seconds per second of the whole file-to-file path."""
        return self.seconds / max(self.total_seconds, 1e-9)

    @property
    def latency_ms(self) -> float:
        """Algorithmic latency: the block being filled plus the model's own lag."""
        return 1000.0 * (self.block_size + self.latency_samples) / self.sample_rate


def stream_file(
    vae_checkpoint: str | os.PathLike,
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    block_size: int = 2048,
    transform: LatentTransform | None = None,
    prior_checkpoint: str | os.PathLike | None = None,
    precision: str = "float32",
) -> StreamResult:
    """Transform a file block by block as a live stream would, and write the result.

    The output is aligned with the input (the model's latency is removed) and as long as it.
    """
    if block_size < 1:
        raise ConfigError(f"--block_size must be at least 1 sample, got {block_size}")
    vae, vae_config = load_vae(vae_checkpoint)
    prior = None
    if prior_checkpoint is not None:
        prior, prior_config = load_prior(prior_checkpoint)
        check_pair(vae_config, prior_config, prior_checkpoint)
    processor = StreamProcessor(vae, transform, prior, precision)
    started = time.perf_counter()
    info, blocks = io.read_blocks(input_path, vae.sample_rate, mono=vae.channels == 1)
    bar = progress.bar(total=info.duration_seconds, desc="stream", unit="s")
    samples = 0

    def counted(blocks):
        nonlocal samples
        for block in blocks:
            samples += block.shape[1]
            bar.update(block.shape[1] / vae.sample_rate)
            yield block

    with io.open_writer(output_path, vae.sample_rate, vae.channels) as write:
        for out in stream_blocks(processor, counted(blocks), block_size):
            write(out)
    bar.close()
    return StreamResult(
        Path(output_path),
        samples / vae.sample_rate,
        processor.stats.compute_seconds,
        block_size,
        processor.latency_samples,
        vae.sample_rate,
        total_seconds=time.perf_counter() - started,
    )


def stream_blocks(
    processor: StreamProcessor, blocks: Iterable[np.ndarray], block_size: int
) -> Iterator[np.ndarray]:
    """Run decoded input blocks through `processor` in blocks of `block_size` samples and yield
    the output aligned with the input (the processor's latency removed), exactly as long."""
    lag = skip = processor.latency_samples
    for chunk in _reblock(blocks, block_size, processor.channels):
        out = processor.process(chunk)
        yield out[:, skip:]
        skip = max(0, skip - out.shape[1])
    # Flush: push silence through until the last input sample has come out.
    while lag > 0:
        flush = processor.process(np.zeros((processor.channels, block_size), np.float32))
        take = flush[:, skip : skip + lag]
        skip = max(0, skip - flush.shape[1])
        lag -= take.shape[1]
        yield take


def _reblock(blocks, block_size: int, channels: int):
    """Re-cut decoded blocks of any size into blocks of exactly block_size (the last shorter)."""
    pending = np.zeros((channels, 0), np.float32)
    for block in blocks:
        pending = np.concatenate([pending, block], axis=1)
        while pending.shape[1] >= block_size:
            yield pending[:, :block_size]
            pending = pending[:, block_size:]
    if pending.shape[1]:
        yield pending
