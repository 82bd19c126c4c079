"""Cut one audio file into fixed-length segment WAVs: the per-file work of `helius prep`.

The file is streamed (decode -> downmix -> resample -> cut), so memory does not grow with its
length. Segments are written into a hidden `.partial` folder that is renamed into place only
when the whole file succeeded, so a crash never leaves half a file's segments behind.
The tail shorter than one segment is dropped; digitally silent segments are dropped.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from helius.audio import io
from helius.errors import HeliusError

TAG_KEYS = ("title", "artist", "album", "genre", "date", "tracknumber", "bpm", "comment")


@dataclass(frozen=True)
class PrepSettings:
    """What a prepared folder was made with; changing any of it means re-preparing."""

    sample_rate: int = 48000
    segment_seconds: float = 2.0
    mono: bool = True
    silence_threshold_db: float = -60.0
    subtype: str = "PCM_16"

    @property
    def segment_frames(self) -> int:
        return round(self.segment_seconds * self.sample_rate)


@dataclass(frozen=True)
class FileJob:
    source: Path  # absolute path of the input file
    relpath: str  # path relative to input_dir, with forward slashes
    segment_dir: Path  # final folder for this file's segments (inside output_dir)
    output_dir: Path
    settings: PrepSettings


@dataclass
class FileResult:
    relpath: str
    ok: bool
    reason: str = ""
    segments: list[dict[str, Any]] = field(default_factory=list)
    silent_segments: int = 0
    audio_seconds: float = 0.0  # decoded duration at the target rate
    tags: dict[str, str] = field(default_factory=dict)


def segment_file(job: FileJob) -> FileResult:
    """Decode, cut and write one file's segments; never raises for bad input."""
    partial = job.segment_dir.with_name(f".{job.segment_dir.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        result = _cut(job, partial)
    except HeliusError as error:
        result = FileResult(job.relpath, ok=False, reason=_short_reason(error, job.source))
    except (OSError, ValueError, RuntimeError) as error:
        result = FileResult(job.relpath, ok=False, reason=f"{type(error).__name__}: {error}")
    if result.ok:
        shutil.rmtree(job.segment_dir, ignore_errors=True)
        partial.rename(job.segment_dir)
    else:
        shutil.rmtree(partial, ignore_errors=True)
    return result


def _cut(job: FileJob, partial: Path) -> FileResult:
    settings = job.settings
    segment_frames = settings.segment_frames
    _, blocks = io.read_blocks(job.source, settings.sample_rate, settings.mono)
    result = FileResult(job.relpath, ok=True, tags=read_tags(job.source))
    buffer: list[np.ndarray] = []
    buffered = 0
    index = 0
    total_frames = 0
    for block in blocks:
        total_frames += block.shape[1]
        buffer.append(block)
        buffered += block.shape[1]
        while buffered >= segment_frames:
            joined = np.concatenate(buffer, axis=1) if len(buffer) > 1 else buffer[0]
            _emit(job, partial, joined[:, :segment_frames], index, result)
            index += 1
            rest = joined[:, segment_frames:]
            buffer, buffered = ([rest] if rest.shape[1] else []), rest.shape[1]
    result.audio_seconds = total_frames / settings.sample_rate
    if index == 0:
        return FileResult(
            job.relpath,
            ok=False,
            reason=f"too short: {result.audio_seconds:.3g} s < one "
            f"{settings.segment_seconds:g} s segment",
        )
    if not result.segments:
        return FileResult(
            job.relpath,
            ok=False,
            audio_seconds=result.audio_seconds,
            reason=(
                f"silent: all {index} segments below {settings.silence_threshold_db:g} dBFS RMS"
            ),
        )
    return result


def _emit(job: FileJob, partial: Path, audio: np.ndarray, index: int, result: FileResult) -> None:
    settings = job.settings
    flat = audio.reshape(-1)
    mean_square = float(np.dot(flat, flat)) / flat.size  # BLAS dot: far faster than mean(x**2)
    rms_db = 10.0 * np.log10(max(mean_square, 1e-20))
    if rms_db < settings.silence_threshold_db:
        result.silent_segments += 1
        return
    partial.mkdir(parents=True, exist_ok=True)
    name = f"{index:05d}.wav"
    # The .partial folder is renamed into place whole, so each file need not be atomic.
    io.save(partial / name, audio, settings.sample_rate, subtype=settings.subtype, atomic=False)
    result.segments.append(
        {
            "segment": (job.segment_dir / name).relative_to(job.output_dir).as_posix(),
            "offset_seconds": round(index * settings.segment_seconds, 6),
            "duration_seconds": settings.segment_seconds,
            "rms_db": round(rms_db, 2),
        }
    )


def read_tags(path: Path) -> dict[str, str]:
    """The file's common text tags (ID3, Vorbis comments, MP4 atoms), via mutagen; {} if none."""
    try:
        import mutagen

        tagged = mutagen.File(str(path), easy=True)
    except Exception:  # mutagen raises many types for odd files; tags are optional
        return {}
    if tagged is None or not tagged.tags:
        return {}
    tags = {}
    for key in TAG_KEYS:
        try:
            values = tagged.tags.get(key)
        except (KeyError, ValueError):
            continue
        if values:
            text = values if isinstance(values, str) else ", ".join(str(v) for v in values)
            tags[key] = text[:200]
    return tags


def _short_reason(error: Exception, source: Path) -> str:
    """The error message without the file path (the report already names the file)."""
    message = str(error)
    prefix = f"{source}: "
    return message[len(prefix) :] if message.startswith(prefix) else message
