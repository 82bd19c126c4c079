"""The clip VAE's one-shot benchmark: the set builder (MIDI writing, hit cutting, the split,
the soundfont reader) and bench/clip_quality.py run end to end on generated clips."""

from __future__ import annotations

import json
import math
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import oneshots  # noqa: E402  (a bench script, importable once bench/ is on the path)

TINY_RATE = 8000  # bench/train_speed.py's tiny clip VAE: 0.5 s clips at 8 kHz
TINY_SAMPLES = 4000


def _read_midi(data: bytes) -> tuple[int, list[tuple[int, bytes]]]:
    """(ticks per quarter, [(absolute tick, message)]) of a format-0 file, read independently
    of the writer: header fields, variable-length deltas, 2- and 3-byte channel messages and
    meta events."""
    assert data[:4] == b"MThd"
    length, file_format, tracks, division = struct.unpack(">IHHH", data[4:14])
    assert (length, file_format, tracks) == (6, 0, 1)
    assert data[14:18] == b"MTrk"
    (track_length,) = struct.unpack(">I", data[18:22])
    track = data[22 : 22 + track_length]
    assert len(track) == track_length
    events, position, now = [], 0, 0
    while position < len(track):
        delta = 0
        while True:
            byte = track[position]
            position += 1
            delta = (delta << 7) | (byte & 0x7F)
            if byte < 0x80:
                break
        now += delta
        status = track[position]
        if status == 0xFF:
            size = track[position + 2]
            message = track[position : position + 3 + size]
        else:
            size = 2 if status & 0xF0 == 0xC0 else 3
            message = track[position : position + size]
        events.append((now, bytes(message)))
        position += len(message)
    return division, events


def test_kit_midi_plays_each_hit_on_the_drum_channel_at_its_time():
    hits = [(36, 100), (38, 60), (81, 100)]
    division, events = _read_midi(oneshots.kit_midi(25, hits))
    [tempo] = [m for _, m in events if m[:2] == b"\xff\x51"]
    seconds_per_tick = int.from_bytes(tempo[3:6], "big") / 1e6 / division
    assert events[-1][1] == b"\xff\x2f\x00"  # end of track, after the last hit's window
    assert events[-1][0] * seconds_per_tick >= 2 * 1.5 + 1.0
    programs = [(t, m) for t, m in events if m[0] & 0xF0 == 0xC0]
    assert programs == [(0, bytes([0xC9, 25]))]  # channel 10 (index 9), the kit's program
    notes_on = [(t * seconds_per_tick, m) for t, m in events if m[0] & 0xF0 == 0x90]
    assert [(m[0] & 0x0F, m[1], m[2]) for _, m in notes_on] == [(9, n, v) for n, v in hits]
    assert [t for t, _ in notes_on] == pytest.approx([0.0, 1.5, 3.0])
    silencers = [t * seconds_per_tick for t, m in events if m[:2] == bytes([0xB9, 120])]
    # All sound off after each hit's 1 s window and before the next hit.
    assert len(silencers) == 3
    for start, off in zip([0.0, 1.5, 3.0], silencers, strict=True):
        assert 1.0 <= off - start < 1.5


def test_cut_hits_gives_one_second_clips_starting_at_each_hit():
    rate = oneshots.RATE
    render = np.zeros(int(3.4 * rate), np.float32)  # the third hit's window runs past the end
    for index, start in enumerate((0.0, 1.5, 3.0)):
        render[round(start * rate)] = index + 1.0
    clips = oneshots.cut_hits(render, 3)
    assert [len(clip) for clip in clips] == [rate] * 3
    for index, clip in enumerate(clips):
        assert clip[0] == index + 1.0 and np.count_nonzero(clip) == 1


def test_a_gain_copy_is_a_duplicate_and_another_sound_is_not():
    rng = np.random.default_rng(0)
    kept = rng.standard_normal(1000)
    kept /= np.linalg.norm(kept)
    copy = 0.3 * kept + 0.003 * kept.std() * rng.standard_normal(1000)  # -40 dB
    other = rng.standard_normal(1000)
    assert oneshots.is_copy(copy / np.linalg.norm(copy), [kept])
    assert not oneshots.is_copy(other / np.linalg.norm(other), [kept])
    assert not oneshots.is_copy(kept, [])


def test_split_holds_out_every_20th_group_of_each_source_with_both_velocities():
    names = [f"gm__000-kit__n{note}_v{v}" for note in range(35, 82) for v in (100, 60)]
    names += [f"synth__kick_{index:04d}" for index in range(45)]
    clips = oneshots.split(names[::-1])  # the input order does not matter
    assert clips == oneshots.split(names)
    unseen = {clip.name for clip in clips if clip.unseen}
    # Sorted groups n35, n36, ... : every 20th is n35, n55, n75; synth 0, 20, 40.
    expected_gm = {f"gm__000-kit__n{n}_v{v}.wav" for n in (35, 55, 75) for v in (100, 60)}
    expected_synth = {f"synth__kick_{i:04d}.wav" for i in (0, 20, 40)}
    assert unseen == expected_gm | expected_synth


def _fake_soundfont(path: Path, presets: list[tuple[str, int, int]]) -> Path:
    """A RIFF sfbk file with INFO, sdta and pdta lists; pdta holds only phdr records."""

    def chunk(name: bytes, body: bytes) -> bytes:
        return name + struct.pack("<I", len(body)) + body + b"\0" * (len(body) & 1)

    records = b"".join(
        struct.pack("<20sHHHIII", name.encode(), program, bank, 0, 0, 0, 0)
        for name, program, bank in [*presets, ("EOP", 0, 0)]
    )
    body = b"sfbk" + chunk(b"LIST", b"INFO" + chunk(b"ifil", b"\2\0\1\0"))
    body += chunk(b"LIST", b"sdta" + chunk(b"smpl", b"\0" * 101))  # odd size: padded
    body += chunk(b"LIST", b"pdta" + chunk(b"phdr", records))
    path.write_bytes(chunk(b"RIFF", body))
    return path


def test_drum_kits_reads_bank_128_presets_from_the_soundfont(tmp_path):
    presets = [("Piano", 0, 0), ("TR-808", 25, 128), ("Standard", 0, 128), ("Flute", 73, 0)]
    soundfont = _fake_soundfont(tmp_path / "fake.sf2", presets)
    assert oneshots.drum_kits(soundfont) == [(0, "Standard"), (25, "TR-808")]


@pytest.mark.skipif(
    shutil.which("fluidsynth") is None or not oneshots.SOUNDFONT.is_file(),
    reason="needs fluidsynth and the FluidR3 GM soundfont (apt fluidsynth fluid-soundfont-gm)",
)
def test_fluidsynth_renders_hits_of_one_second_that_start_at_zero():
    clips = oneshots.render_kit(0, [(36, 100), (42, 60)])  # kick and closed hi-hat
    rate = oneshots.RATE
    assert [len(clip) for clip in clips] == [rate, rate]
    for clip in clips:
        assert oneshots.rms_db(clip) > oneshots.SILENCE_DB
        # The attack is within the first 10 ms, as cut.
        assert np.argmax(np.abs(clip) > 0.1 * np.abs(clip).max()) < 0.01 * rate


def _kick(gain: float) -> np.ndarray:
    from helius.audio.synth import make_oneshot

    audio, _ = make_oneshot("kick", 7, TINY_RATE, TINY_SAMPLES / TINY_RATE)
    return gain * audio


def test_clip_quality_benchmark_scores_every_row(tmp_path):
    """Training clips are one kick at gains 1 and 0.5, so the mean clip is the kick at 0.75:
    against the unseen kick at gains 1 and 0.25 it is a perfect copy up to level, louder by
    (20 log10(0.75) + 20 log10(3)) / 2 = 3.52 dB on average."""
    root = tmp_path / "clips"
    for split, gains in (("train", (1.0, 1.0, 0.5, 0.5)), ("unseen", (1.0, 0.25))):
        (root / split).mkdir(parents=True)
        for index, gain in enumerate(gains):
            path = root / split / f"synth__kick_{index}.wav"
            sf.write(path, _kick(gain), TINY_RATE, subtype="FLOAT")
    results = tmp_path / "results"
    completed = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "clip_quality.py"),
            "--tiny",
            "--steps",
            "3",
            "--oneshots",
            str(root),
            "--work-dir",
            str(tmp_path / "work"),
            "--results-dir",
            str(results),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert completed.returncode == 0, completed.stderr
    assert "| mean_clip |" in completed.stdout
    [path] = results.glob("clip_quality-*.json")
    record = json.loads(path.read_text())
    rows = record["rows"]
    assert list(rows) == ["silence", "static_noise", "mean_clip", "untrained", "trained"]
    assert record["steps"] == 3 and record["threads"] == 1
    assert record["data"]["unseen_clips"] == ["synth__kick_0.wav", "synth__kick_1.wav"]
    assert record["data"]["train_clips"] == 4 and record["train_audio_seconds"] > 0
    for row in rows.values():
        assert all(math.isfinite(value) for value in row.values())
    assert rows["silence"]["si_sdr"] == -100.0
    static = rows["static_noise"]
    assert abs(static["loudness_diff_db"]) < 0.5 and abs(static["loudness_corr"]) < 0.5
    mean_clip = rows["mean_clip"]
    assert mean_clip["loudness_diff_db"] == pytest.approx(3.52, abs=0.05)
    assert mean_clip["si_sdr"] > 40 and mean_clip["loudness_corr"] > 0.99
    for model in ("untrained", "trained"):
        assert {"sensitivity_zero_db", "sensitivity_shuffle_db"} <= set(rows[model])
    assert set(record["rows_by_source"]) == {"synth"}
