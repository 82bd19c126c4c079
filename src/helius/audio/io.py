"""Audio file I/O: common formats in (soundfile, else ffmpeg), soxr resampling, WAV/FLAC out.

Arrays are float32 and shaped (channels, frames) everywhere in the public API.
Reading is block by block, so a long file can be streamed through resampling and
segmentation without ever being held whole (`read_blocks`); `load` collects the
blocks, which keeps peak memory near twice the decoded size.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import struct
import subprocess
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from helius.errors import AudioError, MissingToolError
from helius.files import atomic_output

# Extensions libsndfile 1.2 decodes itself (MP3 and Opus included).
SOUNDFILE_EXTENSIONS = frozenset(
    {".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc"}
    | {".au", ".caf", ".w64", ".rf64"}
)
# Containers that need ffmpeg.
FFMPEG_EXTENSIONS = frozenset({".m4a", ".aac", ".mp4", ".m4b", ".alac", ".wma", ".webm", ".mka"})
AUDIO_EXTENSIONS = SOUNDFILE_EXTENSIONS | FFMPEG_EXTENSIONS

FFMPEG_INSTALL_HINT = (
    "install ffmpeg (Debian/Ubuntu: `sudo apt-get install ffmpeg`, macOS: `brew install ffmpeg`) "
    "or convert the file to WAV/FLAC first"
)
DEFAULT_BLOCK_FRAMES = 1 << 16


@dataclass(frozen=True)
class AudioInfo:
    """What a file holds, before any resampling or downmix."""

    path: Path
    sample_rate: int
    channels: int
    frames: int | None  # None when the container does not say (some ffmpeg streams)
    format: str
    backend: str  # "soundfile" or "ffmpeg"

    @property
    def duration_seconds(self) -> float | None:
        return None if self.frames is None else self.frames / self.sample_rate


def ffmpeg_path() -> str | None:
    """The ffmpeg executable, or None when it is not installed."""
    return shutil.which("ffmpeg")


def info(path: str | os.PathLike) -> AudioInfo:
    """Read a file's header: sample rate, channels, length, format."""
    path = Path(path)
    _check_readable(path)
    try:
        sf_info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as error:
        return _ffmpeg_info(path, error)
    _check_riff_complete(path, sf_info.format)
    return AudioInfo(
        path, sf_info.samplerate, sf_info.channels, sf_info.frames, sf_info.format, "soundfile"
    )


def read_blocks(
    path: str | os.PathLike,
    sample_rate: int | None = None,
    mono: bool = True,
    block_frames: int = DEFAULT_BLOCK_FRAMES,
) -> tuple[AudioInfo, Iterator[np.ndarray]]:
    """Open a file and return its info and a generator of float32 (channels, frames) blocks.

    Blocks come out resampled to `sample_rate` (None keeps the file's rate) and downmixed
    to one channel when `mono`. Decoding errors surface as AudioError while iterating.
    """
    source = info(path)
    raw = (
        _soundfile_blocks(source, block_frames)
        if source.backend == "soundfile"
        else (_ffmpeg_blocks(source, block_frames))
    )
    target_rate = sample_rate or source.sample_rate
    return source, _convert(raw, source, target_rate, mono)


def load(
    path: str | os.PathLike, sample_rate: int | None = None, mono: bool = True
) -> tuple[np.ndarray, int]:
    """Decode a whole file to float32 (channels, frames); returns (audio, sample_rate)."""
    source, blocks = read_blocks(path, sample_rate, mono)
    parts = list(blocks)
    channels = 1 if mono else source.channels
    audio = np.concatenate(parts, axis=1) if parts else np.zeros((channels, 0), np.float32)
    return audio, sample_rate or source.sample_rate


def save(
    path: str | os.PathLike,
    audio: np.ndarray,
    sample_rate: int,
    subtype: str | None = None,
    atomic: bool = True,
) -> Path:
    """Write (channels, frames) or (frames,) float audio as WAV/FLAC/OGG/MP3.

    With `atomic` (the default) the file appears complete or not at all: it is written beside
    its target and renamed. Callers that write into a folder which is itself renamed into
    place when complete may pass atomic=False.
    """
    path = Path(path)
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None, :]
    if audio.ndim != 2:
        raise AudioError(
            f"cannot save {path}: expected (channels, frames) audio, got {audio.shape}"
        )
    file_format = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".mp3": "MP3"}.get(
        path.suffix.lower()
    )
    if file_format is None:
        raise AudioError(f"cannot save {path}: use a .wav, .flac, .ogg or .mp3 file name")
    if not atomic:
        _write(path, audio, sample_rate, subtype, file_format)
        return path
    with atomic_output(path) as tmp_path:
        _write(tmp_path, audio, sample_rate, subtype, file_format)
    return path


@contextlib.contextmanager
def open_writer(
    path: str | os.PathLike, sample_rate: int, channels: int, subtype: str | None = None
) -> Iterator[Callable[[np.ndarray], None]]:
    """Write a long output block by block: yields `write((channels, frames) block)`.

    Memory stays flat however long the output. The file is written beside its target and
    renamed when the block ends without error, so a crash never leaves half a file.
    """
    path = Path(path)
    file_format = {".wav": "WAV", ".flac": "FLAC"}.get(path.suffix.lower())
    if file_format is None:
        raise AudioError(f"cannot write {path} block by block: use a .wav or .flac file name")
    with (
        atomic_output(path) as tmp_path,
        sf.SoundFile(
            str(tmp_path), "w", sample_rate, channels, subtype=subtype, format=file_format
        ) as handle,
    ):

        def write(block: np.ndarray) -> None:
            handle.write(np.asarray(block, dtype=np.float32).T)

        yield write


def _write(path: Path, audio: np.ndarray, sample_rate: int, subtype: str | None, fmt: str) -> None:
    if fmt == "WAV" and subtype in (None, "PCM_16"):
        # The stdlib writer is twice as fast as libsndfile for the many small segments of prep.
        # Scale by 32768 as libsndfile does both ways, so a read gives back what was written.
        pcm = np.clip(np.rint(audio.T * 32768.0), -32768, 32767).astype("<i2")
        with wave.open(str(path), "wb") as handle:
            handle.setnchannels(audio.shape[0])
            handle.setsampwidth(2)
            handle.setframerate(sample_rate)
            handle.writeframes(pcm.tobytes())
        return
    sf.write(str(path), audio.T, sample_rate, subtype=subtype, format=fmt)


# --- decoding backends -------------------------------------------------------------------------


def _check_readable(path: Path) -> None:
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")


def _check_riff_complete(path: Path, file_format: str) -> None:
    """libsndfile silently shortens a truncated WAV; compare the declared data size instead."""
    if file_format != "WAV":
        return
    file_size = path.stat().st_size
    with path.open("rb") as handle:
        header = handle.read(12)
        if header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return
        position = 12
        while position + 8 <= file_size:
            handle.seek(position)
            chunk_id, chunk_bytes = struct.unpack("<4sI", handle.read(8))
            if chunk_id == b"data":
                available = file_size - position - 8
                # 0 and 0xFFFFFFFF mean "unknown" (streamed writers); trust those.
                if 0 < chunk_bytes < 0xFFFFFFFF and chunk_bytes > available:
                    raise AudioError(
                        f"{path}: truncated WAV (header declares {chunk_bytes} data bytes, "
                        f"file has {available}); re-export or re-copy the file"
                    )
                return
            position += 8 + chunk_bytes + (chunk_bytes & 1)


def _soundfile_blocks(source: AudioInfo, block_frames: int) -> Iterator[np.ndarray]:
    try:
        with sf.SoundFile(str(source.path)) as handle:
            while True:
                block = handle.read(block_frames, dtype="float32", always_2d=True)
                if not len(block):
                    return
                yield block
    except (sf.LibsndfileError, RuntimeError) as error:
        raise AudioError(f"{source.path}: corrupt or truncated audio ({error})") from error


def _ffmpeg_info(path: Path, soundfile_error: Exception) -> AudioInfo:
    if path.suffix.lower() not in FFMPEG_EXTENSIONS:
        # libsndfile says "Error opening '<path>': <reason>"; the path is already in front.
        reason = str(soundfile_error).rsplit("': ", 1)[-1].rstrip(".")
        hint = (
            ""
            if path.suffix.lower() in SOUNDFILE_EXTENSIONS
            else (f"; readable types: {', '.join(sorted(AUDIO_EXTENSIONS))}")
        )
        raise AudioError(f"{path}: not a readable audio file ({reason}){hint}") from soundfile_error
    if ffmpeg_path() is None or shutil.which("ffprobe") is None:
        raise MissingToolError(
            f"{path}: reading {path.suffix} files needs ffmpeg; {FFMPEG_INSTALL_HINT}"
        )
    command = [
        "ffprobe",
        "-v",
        "error",
        "-select_streams",
        "a:0",
        "-show_entries",
        "stream=sample_rate,channels,duration,codec_name",
        "-of",
        "json",
        str(path),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    streams = json.loads(result.stdout or "{}").get("streams", []) if result.returncode == 0 else []
    if not streams:
        raise AudioError(f"{path}: ffmpeg finds no audio stream ({result.stderr.strip()[:200]})")
    stream = streams[0]
    sample_rate = int(stream["sample_rate"])
    duration = stream.get("duration")
    frames = round(float(duration) * sample_rate) if duration not in (None, "N/A") else None
    return AudioInfo(
        path,
        sample_rate,
        int(stream["channels"]),
        frames,
        stream.get("codec_name", "unknown"),
        "ffmpeg",
    )


def _ffmpeg_blocks(source: AudioInfo, block_frames: int) -> Iterator[np.ndarray]:
    command = [
        ffmpeg_path() or "ffmpeg",
        "-nostdin",
        "-v",
        "error",
        "-i",
        str(source.path),
        "-map",
        "0:a:0",
        "-f",
        "f32le",
        "-acodec",
        "pcm_f32le",
        "-",
    ]
    frame_bytes = 4 * source.channels
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert process.stdout is not None
        pending = b""
        while chunk := process.stdout.read(block_frames * frame_bytes):
            data = pending + chunk
            usable = len(data) - len(data) % frame_bytes
            pending = data[usable:]
            if usable:
                yield np.frombuffer(data[:usable], np.float32).reshape(-1, source.channels)
        _, stderr = process.communicate()
        if process.returncode != 0:
            message = stderr.decode(errors="replace").strip()[:300]
            raise AudioError(f"{source.path}: ffmpeg could not decode it ({message})")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def downmix(block: np.ndarray) -> np.ndarray:
    """Average the channels of a (frames, channels) block into (frames, 1)."""
    # Column sums beat ndarray.mean(axis=1), which reduces along the short axis slowly.
    total = block[:, 0].copy()
    for channel in range(1, block.shape[1]):
        total += block[:, channel]
    total *= 1.0 / block.shape[1]
    return total[:, None]


def _convert(
    blocks: Iterator[np.ndarray], source: AudioInfo, target_rate: int, mono: bool
) -> Iterator[np.ndarray]:
    """Downmix then resample (frames, channels) blocks; yield (channels, frames) float32."""
    channels = 1 if mono else source.channels
    resampler = None
    if target_rate != source.sample_rate:
        resampler = soxr.ResampleStream(
            source.sample_rate, target_rate, channels, dtype="float32", quality="HQ"
        )
    for block in blocks:
        if mono and block.shape[1] > 1:
            block = downmix(block)
        if resampler is not None:
            block = resampler.resample_chunk(np.ascontiguousarray(block))
        if len(block):
            yield np.ascontiguousarray(block.T)
    if resampler is not None:
        tail = resampler.resample_chunk(np.zeros((0, channels), np.float32), last=True)
        if len(tail):
            yield np.ascontiguousarray(tail.T)
