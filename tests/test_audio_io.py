"""helius.audio.io: formats, downmix, resampling, errors, atomic saves, memory."""

from __future__ import annotations

import shutil
import subprocess
import tracemalloc

import numpy as np
import pytest
import soundfile as sf
from helpers import noise, sine, write

from helius.audio import io
from helius.errors import AudioError, MissingToolError

SR = 44100
HAS_FFMPEG = shutil.which("ffmpeg") is not None and shutil.which("ffprobe") is not None
needs_ffmpeg = pytest.mark.skipif(
    not HAS_FFMPEG, reason="ffmpeg is not installed (apt-get install ffmpeg); .ci/run installs it"
)


def dominant_hz(audio: np.ndarray, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.argmax(spectrum) * sample_rate / len(audio))


@pytest.mark.parametrize("extension", ["wav", "flac"])
def test_lossless_round_trip_is_exact_to_16_bit(tmp_path, extension):
    audio = sine(0.5, SR, channels=2)
    path = io.save(tmp_path / f"x.{extension}", audio, SR)
    loaded, rate = io.load(path, mono=False)
    assert rate == SR
    assert loaded.dtype == np.float32
    assert loaded.shape == audio.shape
    assert np.max(np.abs(loaded - audio)) < 1.0 / 32768 + 1e-7


@pytest.mark.parametrize("extension", ["ogg", "mp3"])
def test_lossy_round_trip_keeps_pitch_level_and_length(tmp_path, extension):
    audio = sine(1.0, SR, freq_hz=1000.0, amplitude=0.5)
    path = io.save(tmp_path / f"x.{extension}", audio, SR)
    loaded, rate = io.load(path)
    assert rate == SR
    assert abs(loaded.shape[1] - audio.shape[1]) < 0.05 * SR  # codec padding only
    assert dominant_hz(loaded[0], SR) == pytest.approx(1000.0, abs=5)
    rms_db = 20 * np.log10(np.sqrt(np.mean(loaded**2)))
    assert rms_db == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=1.0)


@needs_ffmpeg
@pytest.mark.parametrize("extension,codec", [("mp3", "libmp3lame"), ("m4a", "aac")])
def test_files_written_by_ffmpeg_are_read(tmp_path, extension, codec):
    source = write(tmp_path / "source.wav", sine(1.0, SR, freq_hz=1000.0, channels=2), SR)
    target = tmp_path / f"x.{extension}"
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-i",
            str(source),
            "-c:a",
            codec,
            "-b:a",
            "128k",
            str(target),
        ],
        check=True,
    )
    loaded, rate = io.load(target, sample_rate=48000, mono=False)
    assert rate == 48000 and loaded.shape[0] == 2
    assert abs(loaded.shape[1] - 48000) < 0.1 * 48000
    assert dominant_hz(loaded[0], 48000) == pytest.approx(1000.0, abs=5)
    assert dominant_hz(loaded[1], 48000) == pytest.approx(2000.0, abs=5)
    assert io.info(target).backend == ("ffmpeg" if extension == "m4a" else "soundfile")


def test_m4a_without_ffmpeg_says_how_to_install(tmp_path, monkeypatch):
    path = tmp_path / "song.m4a"
    path.write_bytes(b"\x00\x00\x00\x20ftypM4A " + b"\x00" * 64)
    monkeypatch.setattr(io.shutil, "which", lambda name: None)
    with pytest.raises(MissingToolError, match=r"song\.m4a.*needs ffmpeg.*apt-get install ffmpeg"):
        io.load(path)


def test_mono_downmix_averages_channels_and_stereo_keeps_them(tmp_path):
    audio = np.stack([np.full(1000, 0.5), np.full(1000, -0.25)]).astype(np.float32)
    path = write(tmp_path / "st.wav", audio, SR, subtype="FLOAT")
    mono, _ = io.load(path)
    stereo, _ = io.load(path, mono=False)
    assert mono.shape == (1, 1000) and np.allclose(mono, 0.125)
    assert stereo.shape == (2, 1000) and np.allclose(stereo, audio)


def test_resampling_keeps_frequency_amplitude_and_length(tmp_path):
    path = write(tmp_path / "tone.wav", sine(2.0, SR, freq_hz=1000.0), SR, subtype="FLOAT")
    loaded, rate = io.load(path, sample_rate=48000)
    assert rate == 48000
    assert loaded.shape[1] == pytest.approx(96000, abs=2)
    assert dominant_hz(loaded[0], 48000) == pytest.approx(1000.0, abs=2)
    middle = loaded[0, 4800:-4800]
    assert np.max(np.abs(middle)) == pytest.approx(0.5, abs=0.005)


def test_blocks_add_up_to_the_whole_file(tmp_path):
    path = write(tmp_path / "n.flac", noise(3.0, SR, channels=2), SR)
    whole, _ = io.load(path, sample_rate=48000)
    source, blocks = io.read_blocks(path, sample_rate=48000, block_frames=10_000)
    parts = list(blocks)
    assert source.sample_rate == SR and source.channels == 2 and source.frames == 3 * SR
    assert len(parts) > 5
    assert np.array_equal(np.concatenate(parts, axis=1), whole)


def test_bad_files_raise_audio_errors_that_name_the_file(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.touch()
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"definitely not audio " * 50)
    with pytest.raises(AudioError, match="empty.wav: empty file"):
        io.load(empty)
    with pytest.raises(AudioError, match="junk.mp3: not a readable audio file"):
        io.load(junk)
    with pytest.raises(AudioError, match="no such file"):
        io.load(tmp_path / "missing.wav")


@pytest.mark.parametrize("extension", ["wav", "flac"])
def test_truncated_files_are_detected(tmp_path, extension):
    whole = write(tmp_path / f"whole.{extension}", noise(2.0, SR), SR)
    data = whole.read_bytes()
    cut = tmp_path / f"cut.{extension}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match="cut.*truncated"):
        io.load(cut)


def test_save_is_atomic_and_rejects_unknown_formats(tmp_path, monkeypatch):
    target = tmp_path / "out.wav"
    io.save(target, sine(0.1, SR), SR)
    before = target.read_bytes()

    def broken_write(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(io, "_write", broken_write)
    with pytest.raises(RuntimeError):
        io.save(target, sine(0.2, SR), SR)
    assert target.read_bytes() == before  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]  # no temporary left behind
    with pytest.raises(AudioError, match="use a .wav, .flac"):
        io.save(tmp_path / "out.xyz", sine(0.1, SR), SR)


def test_loading_a_long_file_stays_within_twice_its_decoded_size(tmp_path):
    seconds = 60.0
    path = tmp_path / "long.wav"
    with sf.SoundFile(str(path), "w", SR, 2, subtype="PCM_16") as handle:
        for _ in range(int(seconds)):
            handle.write(noise(1.0, SR, channels=2).T)
    tracemalloc.start()
    audio, _ = io.load(path, mono=False)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    decoded_bytes = audio.nbytes
    assert decoded_bytes == 2 * int(seconds * SR) * 4
    assert peak < 2.2 * decoded_bytes
