"""ExplorerSession: one trained VAE behind a lock, loaded on first use, for the latent explorer.

Latents handed out and taken in are CPU float32 tensors: a clip VAE has one vector (D,) per
clip; a wave VAE has a trajectory (D, frames), whose map position is its mean over frames,
and a single vector (D,) given to `decode` is held constant over `frames` frames. A mel VAE
(HarmonicVAE) is explored as a clip VAE of one mel patch per vector, its audio coming out
through its vocoder (`vocoder` given) or Griffin-Lim.
"""

from __future__ import annotations

import gc
import math
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from torch import nn

from helius.audio import io
from helius.config import HeliusConfig
from helius.errors import ConfigError
from helius.models.checkpoint import (
    checkpoint_config,
    checkpoint_kind_entry,
    load_checkpoint,
    load_vae,
)

__all__ = ["ExplorerSession"]

T = TypeVar("T")


class ExplorerSession:
    """A VAE checkpoint opened for exploring; every method is thread-safe.

    The model runs on one thread of its own, whichever thread calls: PyTorch's CPU thread
    pool belongs to the calling thread, and a web server that hands requests to many threads
    builds one pool per thread, which then slow each other down even when only one is busy
    (a 1 s clip decode measured 42 ms when one thread had used torch, 58-63 ms once two had).
    """

    def __init__(
        self,
        checkpoint_path: str | os.PathLike,
        device: str = "cpu",
        vocoder: str | os.PathLike | None = None,
    ) -> None:
        """`vocoder`: a vocoder checkpoint a mel VAE's audio comes out through (its mel
        settings must match); without it, Griffin-Lim. Only mel VAE checkpoints take one."""
        self.checkpoint_path = Path(checkpoint_path)
        self.vocoder = Path(vocoder) if vocoder is not None else None
        self.device = torch.device(device)
        self._lock = threading.RLock()
        self._model_thread_id: int | None = None
        self._model_thread = ThreadPoolExecutor(
            1,
            thread_name_prefix="helius-model",
            initializer=self._start_model_thread,
            initargs=(torch.get_num_threads(),),  # a new thread does not inherit the setting
        )
        self._model: nn.Module | None = None
        self._config: HeliusConfig | None = None

    # ---- loading ------------------------------------------------------------------------

    def _start_model_thread(self, torch_threads: int) -> None:
        self._model_thread_id = threading.get_ident()
        torch.set_num_threads(torch_threads)

    def run(self, work: Callable[[], T]) -> T:
        """`work()` run on the model's thread (no grad), returning its result or raising."""

        def call() -> T:
            with torch.no_grad():
                return work()

        if threading.get_ident() == self._model_thread_id:  # nested: already there
            return call()
        return self._model_thread.submit(call).result()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def model(self) -> nn.Module:
        """The VAE in eval mode, loaded now (on the model's thread) if it is not yet."""
        return self.run(self._loaded_model)

    def _loaded_model(self) -> nn.Module:
        with self._lock:
            if self._model is None:
                self._model, self._config = self._load()
            return self._model

    def _load(self) -> tuple[nn.Module, HeliusConfig]:
        payload = load_checkpoint(self.checkpoint_path, map_location="cpu")
        config = checkpoint_config(payload, self.checkpoint_path)
        entry = checkpoint_kind_entry(payload, config, self.checkpoint_path)
        if entry.audio_model is not None:  # e.g. a mel VAE, heard through its vocoder
            model = entry.open_audio_model(self.checkpoint_path, self.device, self.vocoder)
            return model, config
        if self.vocoder is not None:
            raise ConfigError(
                f"--vocoder is for mel VAE checkpoints; {self.checkpoint_path} holds a "
                f"{payload.get('kind')} model, which makes its own audio: leave --vocoder out"
            )
        return load_vae(self.checkpoint_path, self.device)

    def unload(self) -> None:
        """Drop the model and free its memory; the next use loads it again."""
        with self._lock:
            self._model = None
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    @property
    def config(self) -> HeliusConfig:
        """The checkpoint's config (kept after `unload`, so sizes need no model)."""
        if self._config is None:
            self.model()  # not under the lock: the model's thread takes it to load
        return self._config

    @property
    def kind(self) -> str:
        """ "clip_vae", "wave_vae" or "mel_vae"."""
        return self.config.model.kind

    @property
    def per_clip(self) -> bool:
        """One latent vector per clip (clip and mel VAEs), not a trajectory (wave VAE)."""
        return self.kind != "wave_vae"

    @property
    def latent_dim(self) -> int:
        return self.config.model.latent_dim

    @property
    def sample_rate(self) -> int:
        return self.config.data.sample_rate

    @property
    def channels(self) -> int:
        if self.kind == "mel_vae":  # mono mel features
            return 1
        return 1 if self.config.data.mono else 2

    @property
    def hop_samples(self) -> int:
        """Samples per latent: one clip (clip VAE) or one frame (wave VAE)."""
        model = self.config.model
        if model.kind == "clip_vae":
            return round(model.clip.clip_seconds * self.sample_rate)
        if model.kind == "mel_vae":
            return round(model.segment_length * self.sample_rate)
        return model.wave.hop_samples

    @property
    def default_frames(self) -> int:
        """Frames a constant wave latent is decoded over: one second's worth."""
        return max(1, math.ceil(self.sample_rate / self.hop_samples))

    # ---- encoding -----------------------------------------------------------------------

    def encode_audio(self, audio: np.ndarray) -> torch.Tensor:
        """Posterior mean of audio (C, T) or (T,) at the model's rate.

        Clip VAE: (D,) of the first clip (shorter audio is padded with silence). Wave VAE:
        the trajectory (D, frames), the audio padded to whole frames.
        """
        audio = self._fit_channels(audio)
        hop = self.hop_samples
        whole_frames = max(1, math.ceil(audio.shape[1] / hop))
        length = hop if self.per_clip else whole_frames * hop
        audio = audio[:, :length]
        if audio.shape[1] < length:
            audio = np.pad(audio, ((0, 0), (0, length - audio.shape[1])))
        batch = torch.from_numpy(np.ascontiguousarray(audio))[None].to(self.device)
        mu, _ = self.run(lambda: self.model().encode(batch))
        return mu[0].float().cpu()

    def encode_file(self, path: str | os.PathLike) -> torch.Tensor:
        """`encode_audio` of a sound file, resampled to the model's rate."""
        audio, _ = io.load(path, sample_rate=self.sample_rate, mono=self.channels == 1)
        return self.encode_audio(audio)

    def encode_dataset(
        self, paths: Iterable[str | os.PathLike], max_items: int = 5000
    ) -> torch.Tensor:
        """Map positions (N, D) of up to `max_items` files: `mean_latent` of each, in order."""
        rows = []
        for index, path in enumerate(paths):
            if index >= max_items:
                break
            rows.append(self.mean_latent(self.encode_file(path)))
        if not rows:
            return torch.zeros(0, self.latent_dim)
        return torch.stack(rows)

    # ---- decoding -----------------------------------------------------------------------

    def decode(self, latent: torch.Tensor, frames: int | None = None) -> np.ndarray:
        """Audio (C, T) float32 of a latent.

        Clip VAE: a vector (D,). Wave VAE: a vector (D,) held constant for `frames` frames
        (default one second's worth), or a trajectory (D, frames) decoded as it is.
        """
        return self.decode_batch(self._as_batch(latent), frames)[0]

    def decode_batch(self, latents: torch.Tensor, frames: int | None = None) -> np.ndarray:
        """Audio (N, C, T) of N latents of one shape: vectors (N, D) or trajectories (N, D, F)."""
        latents = torch.as_tensor(latents, dtype=torch.float32)
        if latents.ndim not in (2, 3) or latents.shape[1] != self.latent_dim:
            raise ValueError(
                f"expected latents (N, {self.latent_dim}) or (N, {self.latent_dim}, frames), "
                f"got {tuple(latents.shape)}"
            )
        if self.per_clip:
            if latents.ndim != 2:
                raise ValueError(f"a {self.kind} decodes one vector per clip: latents (N, D)")
        elif latents.ndim == 2:
            latents = latents[:, :, None].expand(-1, -1, frames or self.default_frames)
        latents = latents.contiguous().to(self.device)
        audio = self.run(lambda: self.model().decode(latents))
        return audio.float().cpu().numpy()

    # ---- latent helpers -----------------------------------------------------------------

    @staticmethod
    def offset_trajectory(trajectory: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        """Every frame of a trajectory (D, frames) moved by offset (D,)."""
        offset = torch.as_tensor(offset, dtype=trajectory.dtype)
        if trajectory.ndim != 2 or offset.shape != trajectory.shape[:1]:
            raise ValueError(
                f"need a trajectory (D, frames) and an offset (D,), got "
                f"{tuple(trajectory.shape)} and {tuple(offset.shape)}"
            )
        return trajectory + offset[:, None]

    @staticmethod
    def mean_latent(latent: torch.Tensor) -> torch.Tensor:
        """Map position (D,): a vector as it is, a trajectory's mean over frames."""
        return latent.mean(dim=-1) if latent.ndim == 2 else latent

    def sample_prior(self, n: int, seed: int = 0) -> torch.Tensor:
        """n latent vectors (n, D) from N(0, I), the prior every Helius VAE is trained toward."""
        generator = torch.Generator().manual_seed(seed)
        return torch.randn(n, self.latent_dim, generator=generator)

    # ---- internals ----------------------------------------------------------------------

    def _as_batch(self, latent: torch.Tensor) -> torch.Tensor:
        latent = torch.as_tensor(latent, dtype=torch.float32).detach().cpu()
        if latent.ndim == 1:  # a wave VAE's vector is expanded over frames by decode_batch
            return latent[None]
        if latent.ndim == 2 and self.kind == "wave_vae":
            return latent[None]
        shapes = "a vector (D,)"
        if self.kind == "wave_vae":
            shapes += " or a trajectory (D, frames)"
        raise ValueError(
            f"cannot decode a latent of shape {tuple(latent.shape)} with a {self.kind}: "
            f"give {shapes}"
        )

    def _fit_channels(self, audio: np.ndarray) -> np.ndarray:
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim == 1:
            audio = audio[None]
        if audio.ndim != 2 or audio.shape[1] == 0:
            raise ValueError(f"expected audio (channels, samples), got shape {audio.shape}")
        if audio.shape[0] != self.channels:
            mono = audio.mean(axis=0, keepdims=True)
            audio = np.repeat(mono, self.channels, axis=0)
        return audio
