"""helius.data.prep: segments, indexes, manifest, report, split, incremental runs, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers import noise, sine, snapshot, write

from helius.data.prep import find_audio_files, prepare, split_sources
from helius.data.segment import PrepSettings
from helius.errors import DataError

SR_IN = 22050
SETTINGS = PrepSettings(sample_rate=16000, segment_seconds=0.5)


def make_corpus(folder: Path, count: int = 4, seconds: float = 1.3) -> Path:
    """`count` noise files (WAV and FLAC, some nested, stereo) of `seconds` each."""
    for index in range(count):
        name = f"song{index}.wav" if index % 2 == 0 else f"album/song{index}.flac"
        write(folder / name, noise(seconds, SR_IN, channels=2, seed=index), SR_IN)
    return folder


def read_lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_segments_indexes_manifest_and_report(tmp_path):
    source = make_corpus(tmp_path / "in")
    result = prepare(source, tmp_path / "out", SETTINGS)
    out = tmp_path / "out"
    train, val = read_lines(out / "train_index.txt"), read_lines(out / "val_index.txt")
    # 1.3 s files give two 0.5 s segments each; the 0.3 s tail is dropped.
    assert len(train) + len(val) == 8 and result.segments_train + result.segments_val == 8
    assert len(val) == 2  # one source file of four goes to validation
    for relpath in train + val:
        info = sf.info(str(out / relpath))
        assert (info.samplerate, info.channels, info.frames) == (16000, 1, 8000)
    manifest = [json.loads(line) for line in read_lines(out / "manifest.jsonl")]
    assert sorted(record["segment"] for record in manifest) == sorted(train + val)
    assert {record["offset_seconds"] for record in manifest} == {0.0, 0.5}
    assert all(record["duration_seconds"] == 0.5 for record in manifest)
    assert all(-25 < record["rms_db"] < -15 for record in manifest)  # 0.1-RMS noise, downmixed
    assert {record["source"] for record in manifest} == {
        "song0.wav",
        "album/song1.flac",
        "song2.wav",
        "album/song3.flac",
    }
    val_sources = {record["source"] for record in manifest if record["split"] == "val"}
    assert len(val_sources) == 1
    report = json.loads((out / "prep_report.json").read_text())
    assert report["files_ok"] == 4 and report["files_failed"] == []
    assert report["hours_of_audio"] == pytest.approx(4 * 1.3 / 3600, abs=1e-4)
    assert "4 of 4 audio files" in result.summary()


def test_segment_content_matches_the_resampled_source(tmp_path):
    tone = sine(1.0, 16000, freq_hz=500.0)
    write(tmp_path / "in" / "tone.wav", tone, 16000, subtype="FLOAT")
    prepare(tmp_path / "in", tmp_path / "out", SETTINGS, val_fraction=0)
    first, second = read_lines(tmp_path / "out" / "train_index.txt")
    audio = np.concatenate(
        [sf.read(str(tmp_path / "out" / p), dtype="float32")[0] for p in (first, second)]
    )
    assert np.max(np.abs(audio - tone[0])) < 1.0 / 32768 + 1e-6  # 16-bit segments


def test_silent_segments_are_dropped_by_threshold(tmp_path):
    audio = np.concatenate(
        [
            sine(0.5, SR_IN),
            np.zeros((1, SR_IN // 2), np.float32),
            sine(0.5, SR_IN, amplitude=0.001),
        ],
        axis=1,
    )  # -63 dBFS RMS
    write(tmp_path / "in" / "gap.wav", audio, SR_IN)
    strict = prepare(tmp_path / "in", tmp_path / "a", PrepSettings(16000, 0.5), val_fraction=0)
    assert strict.segments_train == 1 and strict.segments_silent_dropped == 2
    loose = prepare(
        tmp_path / "in",
        tmp_path / "b",
        PrepSettings(16000, 0.5, silence_threshold_db=-70.0),
        val_fraction=0,
    )
    assert loose.segments_train == 2 and loose.segments_silent_dropped == 1


def test_bad_inputs_are_skipped_with_reasons_and_never_modified(tmp_path):
    source = make_corpus(tmp_path / "in", count=2)
    bad = source / "bad"
    (bad / "empty.wav").parent.mkdir()
    (bad / "empty.wav").touch()
    (bad / "corrupt.flac").write_bytes(b"fLaC" + b"\x13" * 300)
    (bad / "text.mp3").write_bytes(b"this is a text file, not an mp3\n" * 20)
    whole = write(bad / "whole.wav", noise(1.0, SR_IN), SR_IN).read_bytes()
    (bad / "truncated.wav").write_bytes(whole[: len(whole) // 3])
    (bad / "whole.wav").unlink()
    write(bad / "short.wav", noise(0.2, SR_IN), SR_IN)
    write(bad / "silent.wav", np.zeros((1, SR_IN), np.float32), SR_IN)
    (source / "cover.jpg").write_bytes(b"\xff\xd8\xff")
    before = snapshot(source)
    outside_before = sorted(p.name for p in tmp_path.iterdir())

    result = prepare(source, tmp_path / "out", SETTINGS)

    reasons = {item["file"]: item["reason"] for item in result.failed}
    assert reasons["bad/empty.wav"] == "empty file (0 bytes)"
    assert (
        "corrupt" in reasons["bad/corrupt.flac"] or "not a readable" in reasons["bad/corrupt.flac"]
    )
    assert reasons["bad/text.mp3"].startswith("not a readable audio file")
    assert reasons["bad/truncated.wav"].startswith("truncated WAV")
    assert reasons["bad/short.wav"].startswith("too short: 0.2 s")
    assert reasons["bad/silent.wav"].startswith("silent:")
    assert result.ignored == ["cover.jpg"]
    assert result.files_ok == 2
    report = json.loads(result.report_path.read_text())
    assert {item["file"] for item in report["files_failed"]} == set(reasons)
    assert "skipped 6 files" in result.summary()
    assert snapshot(source) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*outside_before, "out"])


def test_a_folder_with_nothing_usable_fails_clearly_after_writing_the_report(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "empty.wav").touch()
    with pytest.raises(DataError, match="no usable audio.*1 files failed.*validate-data"):
        prepare(tmp_path / "in", tmp_path / "out", SETTINGS)
    report = json.loads((tmp_path / "out" / "prep_report.json").read_text())
    assert report["files_failed"][0]["file"] == "empty.wav"


def test_output_inside_input_is_not_reingested(tmp_path):
    source = make_corpus(tmp_path / "in", count=2)
    first = prepare(source, source / "prepared", SETTINGS)
    second = prepare(source, source / "prepared", SETTINGS)
    assert first.files_found == second.files_found == 2
    assert second.files_unchanged == 2
    with pytest.raises(DataError, match="must differ"):
        prepare(source, source, SETTINGS)
    with pytest.raises(DataError, match="inside --output_dir"):
        prepare(source, tmp_path, SETTINGS)


def test_incremental_runs_skip_add_redo_and_forget(tmp_path):
    source = make_corpus(tmp_path / "in", count=3)
    out = tmp_path / "out"
    prepare(source, out, SETTINGS)
    segment = out / read_lines(out / "train_index.txt")[0]
    stamp = segment.stat().st_mtime_ns

    again = prepare(source, out, SETTINGS)
    assert (again.files_processed, again.files_unchanged) == (0, 3)
    assert segment.stat().st_mtime_ns == stamp  # untouched

    write(source / "new.wav", noise(2.1, SR_IN, seed=9), SR_IN)
    added = prepare(source, out, SETTINGS)
    assert (added.files_processed, added.files_unchanged) == (1, 3)
    assert added.segments_train + added.segments_val == 3 * 2 + 4

    write(source / "song0.wav", noise(0.6, SR_IN, seed=5), SR_IN)  # changed: now one segment
    (source / "song2.wav").unlink()
    changed = prepare(source, out, SETTINGS)
    assert changed.files_processed == 1 and changed.files_found == 3
    assert changed.segments_train + changed.segments_val == 1 + 2 + 4
    indexed = read_lines(out / "train_index.txt") + read_lines(out / "val_index.txt")
    assert all((out / relpath).is_file() for relpath in indexed)
    on_disk = {p.relative_to(out).as_posix() for p in (out / "segments").rglob("*.wav")}
    assert on_disk == set(indexed)  # the deleted source's segments are gone

    redo = prepare(source, out, SETTINGS, overwrite=True)
    assert (redo.files_processed, redo.files_unchanged) == (3, 0)


def test_changed_settings_need_overwrite(tmp_path):
    source = make_corpus(tmp_path / "in", count=2)
    prepare(source, tmp_path / "out", SETTINGS)
    with pytest.raises(DataError, match="other settings.*--overwrite"):
        prepare(source, tmp_path / "out", PrepSettings(sample_rate=8000, segment_seconds=0.5))
    redone = prepare(source, tmp_path / "out", PrepSettings(8000, 0.5), overwrite=True)
    assert redone.files_processed == 2


def test_split_is_by_source_deterministic_and_stable_as_files_are_added():
    names = [f"take_{index:03d}.wav" for index in range(200)]
    val = split_sources(names, 0.1)
    assert split_sources(list(reversed(names)), 0.1) == val
    assert 8 <= len(val) <= 35
    grown = split_sources([*names, *(f"extra_{index}.wav" for index in range(50))], 0.1)
    assert val <= grown  # adding files never moves a validation file into training
    assert len(split_sources(["a.wav", "b.wav"], 0.02)) == 1
    assert len(split_sources(["a.wav", "b.wav"], 0.99)) == 1  # at least one stays for training
    assert split_sources(["a.wav"], 0.5) == set()
    assert split_sources(names, 0.0) == set()


def test_parallel_workers_give_the_same_result(tmp_path):
    source = make_corpus(tmp_path / "in", count=4)
    prepare(source, tmp_path / "one", SETTINGS, workers=1)
    prepare(source, tmp_path / "two", SETTINGS, workers=2)
    for name in ("train_index.txt", "val_index.txt", "manifest.jsonl"):
        assert (tmp_path / "one" / name).read_text() == (tmp_path / "two" / name).read_text()
    one = snapshot(tmp_path / "one" / "segments")
    two = snapshot(tmp_path / "two" / "segments")
    assert {k: v[2] for k, v in one.items()} == {k: v[2] for k, v in two.items()}


def test_stereo_keeps_channels(tmp_path):
    source = make_corpus(tmp_path / "in", count=1)
    prepare(source, tmp_path / "out", PrepSettings(16000, 0.5, mono=False))
    first = read_lines(tmp_path / "out" / "train_index.txt")[0]
    assert sf.info(str(tmp_path / "out" / first)).channels == 2


def test_id3_tags_reach_the_manifest(tmp_path):
    from mutagen.easyid3 import EasyID3

    path = write(tmp_path / "in" / "tagged.mp3", sine(1.2, SR_IN), SR_IN)
    tags = EasyID3()
    tags["title"], tags["artist"], tags["genre"] = "Night Drive", "Helius Tests", "Ambient"
    tags.save(str(path))
    prepare(tmp_path / "in", tmp_path / "out", SETTINGS)
    record = json.loads(read_lines(tmp_path / "out" / "manifest.jsonl")[0])
    assert record["tags"] == {"title": "Night Drive", "artist": "Helius Tests", "genre": "Ambient"}


def test_find_audio_files_skips_hidden_and_excluded(tmp_path):
    make_corpus(tmp_path, count=2)
    write(tmp_path / ".hidden" / "x.wav", noise(1.0, SR_IN), SR_IN)
    write(tmp_path / ".dot.wav", noise(1.0, SR_IN), SR_IN)
    write(tmp_path / "out" / "segments" / "y.wav", noise(1.0, SR_IN), SR_IN)
    (tmp_path / "notes.txt").write_text("hi")
    found, ignored = find_audio_files(tmp_path, exclude=(tmp_path / "out").resolve())
    assert [relpath for relpath, _ in found] == ["album/song1.flac", "song0.wav"]
    assert ignored == ["notes.txt"]


def test_a_data_sets_own_layout_labels_and_splits_its_sources(tmp_path):
    source = make_corpus(tmp_path / "in")
    splits = {"song0.wav": "test", "album/song1.flac": "val", "song2.wav": "train"}
    result = prepare(
        source,
        tmp_path / "out",
        SETTINGS,
        tags_for=lambda relpath: {"folder": relpath.split("/")[0] if "/" in relpath else "."},
        split_for=splits.get,  # song3 is unlisted: the hash split decides
    )
    out = tmp_path / "out"
    manifest = [json.loads(line) for line in read_lines(out / "manifest.jsonl")]
    by_source = {record["source"]: record for record in manifest}
    assert by_source["song0.wav"]["split"] == "test"
    assert by_source["album/song1.flac"]["split"] == "val"
    assert by_source["song2.wav"]["split"] == "train"
    assert by_source["album/song3.flac"]["tags"] == {"folder": "album"}
    assert by_source["song0.wav"]["tags"] == {"folder": "."}
    test = read_lines(out / "test_index.txt")
    assert len(test) == 2 and all("song0" in line for line in test)
    assert result.segments_test == 2 and "/ 2 test)" in result.summary()
    assert not any("song0" in line for line in read_lines(out / "train_index.txt"))
    with pytest.raises(ValueError, match="splits are train, val and test"):
        prepare(source, tmp_path / "out2", SETTINGS, split_for=lambda relpath: "validation")
