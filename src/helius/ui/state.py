"""What the explorer server holds between requests: the model session, maps, presets, uploads.

Routes stay thin: they parse a request, call `ExplorerState` or `helius.explore`, and answer
with JSON or WAV bytes made here. Every method is safe to call from the server's thread pool.
"""

from __future__ import annotations

import io as bytes_io
import math
import os
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from fastapi import HTTPException, Request
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from helius.audio import io
from helius.data.dataset import read_index
from helius.data.prep import find_audio_files
from helius.errors import AudioError, DataError, HeliusError
from helius.explore import (
    ExplorerSession,
    PresetStore,
    cached_projection,
    directions_from_samples,
    project,
)

DEFAULT_MAX_UPLOAD_BYTES = 50 * 1024 * 1024
MAX_MAP_POINTS = 5000
MODEL_MAP_POINTS = 2000  # prior samples on the Model map
MAX_UPLOAD_SECONDS = 30.0  # of audio encoded from one upload; the rest is ignored
MULTIPART_SLACK_BYTES = 64 * 1024  # form boundaries and headers around the file itself
MAP_MODES = ("data", "model", "synth")
SEQUENCE_BATCH = 8  # clips decoded together for a morph or walk WAV


class UploadTooLarge(HeliusError):
    """A request body is bigger than --max-upload-mb allows."""


@dataclass
class SoundMap:
    """One sound map: positions (N, 2) in [-1, 1], the latents (N, D) they stand for."""

    mode: str
    positions: np.ndarray
    latents: torch.Tensor
    labels: list[str] = field(default_factory=list)


class ExplorerState:
    """The session and everything cached for it; created once per app."""

    def __init__(
        self,
        checkpoint: str | os.PathLike,
        data_dir: str | os.PathLike | None,
        max_upload_bytes: int,
        device: str = "cpu",
        preset_dir: str | os.PathLike | None = None,
        vocoder: str | os.PathLike | None = None,
    ) -> None:
        self.checkpoint = Path(checkpoint)
        self.session = ExplorerSession(self.checkpoint, device, vocoder)
        self.session.model()  # load now, so a bad checkpoint fails at startup
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.max_upload_bytes = int(max_upload_bytes)
        self.presets = (
            PresetStore(preset_dir) if preset_dir else PresetStore.beside(self.checkpoint)
        )
        self._maps: dict[tuple, SoundMap] = {}
        self._map_lock = threading.Lock()
        self._building: dict[tuple, threading.Lock] = {}
        self._directions: dict[str, torch.Tensor] | None = None
        self._directions_lock = threading.Lock()

    # ---- latents in and out -------------------------------------------------------------

    def latent(self, values: list[float]) -> torch.Tensor:
        """A request's latent vector (D,), checked against the model's size."""
        latent = torch.tensor(values, dtype=torch.float32)
        if latent.shape != (self.session.latent_dim,):
            raise HTTPException(
                400,
                f"latent has {latent.numel()} values; this model needs {self.session.latent_dim}",
            )
        return latent

    def trajectory(self, rows: list[list[float]] | None) -> torch.Tensor | None:
        """A wave VAE's trajectory (D, frames) from a request, or None."""
        if rows is None:
            return None
        if self.session.kind != "wave_vae":
            raise HTTPException(400, "only a wave VAE decodes trajectories; send a vector")
        trajectory = torch.tensor(rows, dtype=torch.float32)
        frames_limit = self.session.default_frames * math.ceil(MAX_UPLOAD_SECONDS)
        if trajectory.ndim != 2 or trajectory.shape[0] != self.session.latent_dim:
            raise HTTPException(400, f"a trajectory is (D={self.session.latent_dim}, frames)")
        if not 0 < trajectory.shape[1] <= frames_limit:
            raise HTTPException(400, f"a trajectory holds 1 to {frames_limit} frames")
        return trajectory

    def render(self, latent: torch.Tensor, base: torch.Tensor | None = None) -> np.ndarray:
        """Audio (C, T) of a vector; with a wave `base` trajectory, the base moved to it."""
        if base is not None:
            offset = latent - self.session.mean_latent(base)
            return self.session.decode(self.session.offset_trajectory(base, offset))
        return self.session.decode(latent)

    def render_sequence(self, latents: torch.Tensor) -> np.ndarray:
        """One continuous sound (C, T) of latents (N, D) one after another."""
        if self.session.kind == "wave_vae":  # one trajectory, each latent held for a second
            frames = self.session.default_frames
            return self.session.decode(latents.T.repeat_interleave(frames, dim=1))
        # A few clips per batch: a whole 64-step morph at once would need gigabytes.
        batches = [self.session.decode_batch(part) for part in latents.split(SEQUENCE_BATCH)]
        return np.concatenate([clip for batch in batches for clip in batch], axis=-1)

    def wav(self, audio: np.ndarray) -> bytes:
        return wav_bytes(audio, self.session.sample_rate)

    def load_audio(self, path: Path) -> np.ndarray:
        """Up to MAX_UPLOAD_SECONDS of a sound file (an upload, a data clip) at the model's rate."""
        source, blocks = io.read_blocks(
            path, self.session.sample_rate, mono=self.session.channels == 1
        )
        limit = round(MAX_UPLOAD_SECONDS * self.session.sample_rate)
        parts, frames = [], 0
        for block in blocks:
            parts.append(block[:, : limit - frames])
            frames += parts[-1].shape[1]
            if frames >= limit:
                break
        if frames == 0:
            raise AudioError(f"the uploaded {source.format} file holds no audio")
        return np.concatenate(parts, axis=1)

    # ---- attribute directions -----------------------------------------------------------

    def directions(self) -> dict[str, torch.Tensor]:
        """Brightness/noisiness/loudness directions, fitted once on decoded prior samples."""
        with self._directions_lock:
            if self._directions is None:
                samples = min(64, max(16, 2 * self.session.latent_dim + 8))
                self._directions = directions_from_samples(self.session, n=samples)
            return self._directions

    # ---- sound maps ---------------------------------------------------------------------

    def sound_map(self, mode: str, method: str, seed: int, temperature: float) -> SoundMap:
        """The map of a mode, computed on first use and kept (Synth: the latest seed only).

        Each map is built under its own lock, so encoding a large data set does not hold up
        the Model or Synth map (or a second request for the same map builds it twice).
        """
        key = (mode, method) if mode != "synth" else (mode, method, seed, temperature)
        with self._map_lock:
            if key in self._maps:
                return self._maps[key]
            building = self._building.setdefault(key, threading.Lock())
        with building:
            with self._map_lock:
                if key in self._maps:
                    return self._maps[key]
            built = self._build_map(mode, method, seed, temperature)
            with self._map_lock:
                if mode == "synth":  # every "New samples" makes another; keep the last
                    for old in [other for other in self._maps if other[0] == "synth"]:
                        del self._maps[old]
                self._maps[key] = built
                self._building.pop(key, None)
            return built

    def _build_map(self, mode: str, method: str, seed: int, temperature: float) -> SoundMap:
        if mode == "data":
            paths = self.data_paths()
            latents = self.session.encode_dataset(paths, max_items=MAX_MAP_POINTS)
            labels = [Path(path).name for path in paths[: len(latents)]]
            positions = cached_projection(self.checkpoint, latents, method)
            return SoundMap(mode, positions, latents, labels)
        if mode == "model":  # the model's own space: fixed prior samples, cached map
            latents = self.session.sample_prior(MODEL_MAP_POINTS, seed=0)
            return SoundMap(mode, cached_projection(self.checkpoint, latents, method), latents)
        latents = temperature * self.session.sample_prior(MAX_MAP_POINTS // 5, seed=seed)
        return SoundMap(mode, project(latents, method, seed), latents)

    def data_paths(self) -> list[Path]:
        """The audio of --data: an index file, a prepared folder (train index) or any folder."""
        if self.data_dir is None:
            raise DataError("the Data map needs clips: start helius explore with --data FOLDER")
        if self.data_dir.is_file():
            paths = read_index(self.data_dir)
        elif (self.data_dir / "train_index.txt").is_file():
            paths = read_index(self.data_dir / "train_index.txt")
        elif self.data_dir.is_dir():
            paths = [path for _, path in find_audio_files(self.data_dir)[0]]
        else:
            raise DataError(f"--data {self.data_dir}: no such index file or folder")
        if not paths:
            raise DataError(f"--data {self.data_dir} holds no audio files")
        return paths[:MAX_MAP_POINTS]


def wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    """16-bit PCM WAV of (C, T) float audio: what every browser plays and downloads."""
    buffer = bytes_io.BytesIO()
    clipped = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    sf.write(buffer, clipped.T, sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


async def counted_stream(
    chunks: AsyncIterator[bytes], content_length: str | None, limit: int
) -> AsyncIterator[bytes]:
    """The request body, refused (UploadTooLarge) as soon as it is known to exceed `limit`.

    The declared Content-Length is checked before anything is read; the bytes are counted as
    they arrive too, since a client may send no length or a false one.
    """
    if content_length is not None and content_length.isdigit() and int(content_length) > limit:
        raise UploadTooLarge(f"an upload of {int(content_length)} bytes is over {_mb(limit)}")
    received = 0
    async for chunk in chunks:
        received += len(chunk)
        if received > limit:
            raise UploadTooLarge(f"the upload is over {_mb(limit)}")
        yield chunk


async def receive_upload(request: Request, limit: int) -> Path:
    """The multipart field `file` of a request, saved to a fresh temp file (size-checked).

    The client's file name is never used as a path: only its extension, and only when it is a
    known audio type (ffmpeg-decoded containers are recognised by it).
    """
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise HTTPException(400, "send the sound as multipart/form-data in a field named 'file'")
    body = counted_stream(
        request.stream(), request.headers.get("content-length"), limit + MULTIPART_SLACK_BYTES
    )
    parser = MultiPartParser(request.headers, body, max_files=1, max_fields=8)
    try:
        form = await parser.parse()
    except MultiPartException as error:
        raise HTTPException(400, f"malformed upload: {error.message}") from None
    upload = form.get("file")
    try:
        if not isinstance(upload, UploadFile):
            raise HTTPException(400, "the upload has no file in a field named 'file'")
        if (upload.size or 0) > limit:
            raise UploadTooLarge(f"the file is over {_mb(limit)}")
        if not upload.size:
            raise HTTPException(400, "the uploaded file is empty")
        suffix = Path(upload.filename or "").suffix.lower()
        suffix = suffix if suffix in io.AUDIO_EXTENSIONS else ".upload"
        handle, name = tempfile.mkstemp(prefix="helius-upload-", suffix=suffix)
        with os.fdopen(handle, "wb") as out:
            upload.file.seek(0)
            shutil.copyfileobj(upload.file, out)
        return Path(name)
    finally:
        await form.close()


def _mb(limit: int) -> str:
    return f"the {limit / 2**20:g} MB limit (--max-upload-mb)"
