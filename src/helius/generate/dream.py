"""Dream mode: the prior writes a latent sequence frame by frame and the streaming decoder turns
it into audio chunk by chunk, so any length runs in flat memory. With a prompt, the prior
first listens to the encoded prompt and then continues it (the seed's "extrapolate").
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from helius import progress
from helius.audio import io
from helius.errors import ConfigError
from helius.models.checkpoint import check_pair, load_prior, load_vae
from helius.models.prior import LatentPrior

DREAM_CHUNK_FRAMES = 16  # latent frames decoded per call


@dataclass(frozen=True)
class DreamResult:
    output: Path
    seconds: float
    prompt_seconds: float
    elapsed_seconds: float

    @property
    def realtime_factor(self) -> float:
        return (self.seconds + self.prompt_seconds) / max(self.elapsed_seconds, 1e-9)


@torch.no_grad()
def encode_prompt(vae: nn.Module, audio: np.ndarray) -> torch.Tensor:
    """Posterior means (1, D, frames) of (channels, samples) audio, whole frames only."""
    hop = int(vae.hop_samples)
    usable = audio.shape[1] // hop * hop
    if usable == 0:
        raise ConfigError(
            f"the prompt is shorter than one latent frame ({hop} samples); use a longer file"
        )
    mu, _ = vae.encode(torch.from_numpy(np.ascontiguousarray(audio[:, :usable]))[None])
    return mu


@torch.no_grad()
def dream_latents(
    prior: LatentPrior,
    frames: int,
    temperature: float = 1.0,
    prompt: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    chunk_frames: int = DREAM_CHUNK_FRAMES,
) -> Iterator[torch.Tensor]:
    """Yield VAE latents (1, D, n) of `frames` new frames in chunks of at most `chunk_frames`.

    Without a prompt the first frame is drawn from N(0, temperature^2) in standardised space;
    with one (latents (1, D, T)), the prior's state after the prompt seeds the continuation.
    """
    state = None
    if prompt is not None:
        logits, state = prior(prior.standardise(prompt))
        frame = prior.sample(logits[:, -1], temperature, generator)
    else:
        noise = torch.randn(1, prior.latent_dim, generator=generator)
        frame = noise * temperature
    made = 0
    while made < frames:
        count = min(chunk_frames, frames - made)
        chunk = [frame]
        for _ in range(count - 1):
            logits, state = prior(frame[:, None, :], state)
            frame = prior.sample(logits[:, -1], temperature, generator)
            chunk.append(frame)
        yield prior.restore(torch.stack(chunk, dim=1))
        made += count
        if made < frames:
            logits, state = prior(frame[:, None, :], state)
            frame = prior.sample(logits[:, -1], temperature, generator)


@torch.no_grad()
def dream_audio(
    vae: nn.Module,
    prior: LatentPrior,
    seconds: float,
    temperature: float = 1.0,
    seed: int = 0,
    prompt_audio: np.ndarray | None = None,
) -> Iterator[np.ndarray]:
    """Yield float32 (channels, samples) blocks: the decoded prompt (if any), then the dream.

    The VAE must be causal: its decoder streams, so memory does not grow with `seconds`.
    """
    if not getattr(vae, "can_stream", False):
        raise ConfigError(
            "dreaming any length needs a causal (streaming) wave VAE: train one with "
            "model.wave.causal: true"
        )
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # the decoder's noise branch draws from the global generator
    hop = int(vae.hop_samples)
    samples = round(seconds * vae.sample_rate)
    frames = math.ceil(samples / hop)
    vae.streaming(True)
    try:
        prompt = None
        if prompt_audio is not None:
            prompt = encode_prompt(vae, prompt_audio)
            for start in range(0, prompt.shape[-1], DREAM_CHUNK_FRAMES):
                yield vae.decode(prompt[..., start : start + DREAM_CHUNK_FRAMES])[0].numpy()
        left = samples
        for latents in dream_latents(prior, frames, temperature, prompt, generator):
            audio = vae.decode(latents)[0].numpy()
            yield audio[:, :left]
            left -= audio.shape[1]
    finally:
        vae.streaming(False)


def dream_to_file(
    vae_checkpoint: str | os.PathLike,
    prior_checkpoint: str | os.PathLike,
    output_path: str | os.PathLike,
    seconds: float,
    temperature: float = 1.0,
    seed: int = 0,
    prompt_path: str | os.PathLike | None = None,
) -> DreamResult:
    """Load both checkpoints, dream `seconds` of audio (after the prompt) into a WAV/FLAC."""
    if seconds <= 0:
        raise ConfigError(f"--length_seconds must be positive, got {seconds:g}")
    vae, vae_config = load_vae(vae_checkpoint)
    prior, prior_config = load_prior(prior_checkpoint)
    check_pair(vae_config, prior_config, prior_checkpoint)
    prompt_audio = None
    if prompt_path is not None:
        prompt_audio, _ = io.load(prompt_path, vae.sample_rate, mono=vae.channels == 1)
    started = time.perf_counter()
    written = 0
    total = round(seconds * vae.sample_rate) + (
        0 if prompt_audio is None else prompt_audio.shape[1] // vae.hop_samples * vae.hop_samples
    )
    bar = progress.bar(total=total / vae.sample_rate, desc="dream", unit="s")
    with io.open_writer(output_path, vae.sample_rate, vae.channels) as write:
        for block in dream_audio(vae, prior, seconds, temperature, seed, prompt_audio):
            write(block)
            written += block.shape[1]
            bar.update(block.shape[1] / vae.sample_rate)
    bar.close()
    elapsed = time.perf_counter() - started
    return DreamResult(
        Path(output_path),
        seconds,
        (written - round(seconds * vae.sample_rate)) / vae.sample_rate,
        elapsed,
    )
