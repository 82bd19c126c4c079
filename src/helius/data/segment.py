"""Cut one audio file into fixed-length segment WAVs: the per-file work of `helius prep`.

The file is streamed (decode -> downmix -> resample -> cut), so memory does not grow with its
length. Segments are written into a hidden `.partial` folder that is renamed into place only
when the whole file succeeded, so a crash never leaves half a file's segments behind.
The tail shorter than one segment is dropped; digitally silent segments are dropped.

One-shot mode (`PrepSettings.one_shot`, `helius prep --one_shot`) makes one clip per file
instead: leading silence trimmed to the onset, then padded with silence or cut with a short
fade to exactly one segment, so a library of 0.1-2 s hits loses nothing for being short.
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
    one_shot: bool = False  # one clip per file, from its onset (see the module docstring)

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
    one_shot: str = ""  # one-shot mode: "padded", "cut" or "exact"


def segment_file(job: FileJob) -> FileResult:
    """Decode, cut and write one file's segments; never raises for bad input."""
    partial = job.segment_dir.with_name(f".{job.segment_dir.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        result = _one_shot(job, partial) if job.settings.one_shot else _cut(job, partial)
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


# One-shot mode: the onset is the first sample within ONSET_DB of the loudest one (so a quiet
# hiss before the hit is trimmed too), started PREROLL_SECONDS early to keep the attack whole.
ONSET_DB = -40.0
PREROLL_SECONDS = 0.002
FADE_SECONDS = 0.05  # a file longer than the clip is cut with this fade-out
MAX_SCAN_SECONDS = 30.0  # how far into a (long) file the onset is looked for


def _one_shot(job: FileJob, partial: Path) -> FileResult:
    settings = job.settings
    frames, rate = settings.segment_frames, settings.sample_rate
    _, blocks = io.read_blocks(job.source, rate, settings.mono)
    result = FileResult(job.relpath, ok=True, tags=read_tags(job.source))
    parts, read = [], 0
    for block in blocks:
        parts.append(block)
        read += block.shape[1]
        if read >= round(MAX_SCAN_SECONDS * rate) + frames:
            break  # enough for the onset and one clip after it
    audio = np.concatenate(parts, axis=1) if parts else np.zeros((1, 0), np.float32)
    result.audio_seconds = audio.shape[1] / rate
    level = np.abs(audio).max(axis=0) if audio.size else np.zeros(0, np.float32)
    peak = float(level.max()) if level.size else 0.0
    if 20 * np.log10(max(peak, 1e-10)) < settings.silence_threshold_db:
        return FileResult(
            job.relpath,
            ok=False,
            audio_seconds=result.audio_seconds,
            reason=f"silent: peak below {settings.silence_threshold_db:g} dBFS",
        )
    onset = int(np.argmax(level >= peak * 10 ** (ONSET_DB / 20)))
    start = max(0, onset - round(PREROLL_SECONDS * rate))
    clip = audio[:, start : start + frames]
    if clip.shape[1] < frames:
        result.one_shot = "padded"
        clip = np.pad(clip, ((0, 0), (0, frames - clip.shape[1])))
    elif audio.shape[1] - start > frames:
        result.one_shot = "cut"
        fade = min(round(FADE_SECONDS * rate), frames)
        clip = clip.copy()
        clip[:, frames - fade :] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    else:
        result.one_shot = "exact"
    _emit(job, partial, clip, 0, result)
    for segment in result.segments:
        segment["offset_seconds"] = round(start / rate, 6)  # where the clip starts in the file
    if not result.segments:  # the clip's RMS is under the silence threshold
        return FileResult(
            job.relpath,
            ok=False,
            audio_seconds=result.audio_seconds,
            reason=f"silent: RMS below {settings.silence_threshold_db:g} dBFS",
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
