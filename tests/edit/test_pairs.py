"""Training pairs of a data folder (`helius.edit.pairs`): raw and edited tracks matched by
name, every other file listed with the reason it is not used, a missing folder refused."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import sine, write

from helius.edit.pairs import find_pairs
from helius.errors import DataError

RATE = 22050


def data_folder(root):
    """Two good pairs and one file for each way a file can fail to be part of a pair."""
    track = sine(6.0, RATE)
    write(root / "input" / "song1_raw.wav", track, RATE)
    write(root / "desired_output" / "song1_edit.wav", sine(5.5, RATE), RATE)
    write(root / "input" / "song2_raw.flac", sine(7.0, RATE, channels=2), RATE)
    write(root / "desired_output" / "song2_edit.wav", track, RATE)
    write(root / "input" / "song1_raw.ogg", track, RATE)  # a second raw file for song1
    write(root / "input" / "lonely_raw.wav", track, RATE)
    write(root / "desired_output" / "orphan_edit.wav", track, RATE)
    (root / "input" / "broken_raw.wav").write_bytes(b"RIFF....not audio at all")
    write(root / "desired_output" / "broken_edit.wav", track, RATE)
    write(root / "input" / "brief_raw.wav", sine(2.0, RATE), RATE)
    write(root / "desired_output" / "brief_edit.wav", track, RATE)
    write(root / "input" / "song3.wav", track, RATE)  # no _raw
    write(root / "desired_output" / "song3_edit.flac", track, RATE)  # edits must be WAV
    (root / "input" / "notes.txt").write_text("mix notes")
    (root / "input" / "old").mkdir()
    write(root / "reference" / "finished.wav", track, RATE)
    (root / "reference" / "empty.wav").write_bytes(b"")
    (root / "pointer_sequences").mkdir()
    np.savez(root / "pointer_sequences" / "song2.npz", pointers=np.arange(3))
    return root


def test_pairs_are_matched_by_name_and_every_other_file_says_why_not(tmp_path):
    report = find_pairs(data_folder(tmp_path))
    assert [pair.name for pair in report.pairs] == ["song1", "song2"]
    song1, song2 = report.pairs
    assert song1.raw.name == "song1_raw.ogg"  # the first of the two in name order
    assert (song1.raw_seconds, song1.edit_seconds) == (pytest.approx(6.0), pytest.approx(5.5))
    assert song1.pointers is None and song2.pointers == tmp_path / "pointer_sequences/song2.npz"
    assert [(ref.path.name, round(ref.seconds)) for ref in report.references] == [
        ("finished.wav", 6)
    ]
    reasons = {skip.path.relative_to(tmp_path).as_posix(): skip.reason for skip in report.skipped}
    expected = {
        "input/song1_raw.wav": "same NAME as song1_raw.ogg",
        "input/lonely_raw.wav": "no partner desired_output/lonely_edit.wav",
        "desired_output/orphan_edit.wav": "no partner input/orphan_raw.wav",
        "input/broken_raw.wav": "unreadable",
        "desired_output/broken_edit.wav": "its partner broken_raw.wav is skipped",
        "input/brief_raw.wav": "too short: 2.00 s < min_seconds 5.0",
        "desired_output/brief_edit.wav": "its partner brief_raw.wav is skipped",
        "input/song3.wav": "not named NAME_raw",
        "desired_output/song3_edit.flac": "not named NAME_edit.wav",
        "input/notes.txt": "not named NAME_raw",
        "input/old": "subfolder",
        "reference/empty.wav": "unreadable",
    }
    assert reasons.keys() == expected.keys()
    for path, reason in expected.items():
        assert reason in reasons[path], path
    # Nothing is dropped silently: every file is in a pair, a reference or the skipped list.
    listed = {p for pair in report.pairs for p in (pair.raw, pair.edit)}
    listed |= {ref.path for ref in report.references} | {skip.path for skip in report.skipped}
    folders = ("input", "desired_output", "reference")
    assert {p for folder in folders for p in (tmp_path / folder).iterdir()} == listed


def test_min_seconds_decides_what_is_too_short(tmp_path):
    report = find_pairs(data_folder(tmp_path), min_seconds=1.0)
    assert "brief" in [pair.name for pair in report.pairs]
    report = find_pairs(tmp_path, min_seconds=6.5)
    assert [pair.name for pair in report.pairs] == []  # song2's edit is 6 s, song1's 5.5 s


def test_the_summary_counts_lists_and_explains(tmp_path):
    text = find_pairs(data_folder(tmp_path)).summary()
    assert text.startswith(f"{tmp_path}: 2 pair(s), 1 reference track(s), 12 file(s) skipped")
    assert (
        "song2: input/song2_raw.flac (7.0 s) -> desired_output/song2_edit.wav (6.0 s), pointers"
        in text
    )
    assert "input/lonely_raw.wav: no partner desired_output/lonely_edit.wav" in text
    assert "no usable pairs" not in text


@pytest.mark.parametrize("missing", ["input", "desired_output"])
def test_a_missing_folder_is_refused_with_the_expected_layout(tmp_path, missing):
    for folder in {"input", "desired_output"} - {missing}:
        (tmp_path / folder).mkdir()
    with pytest.raises(DataError, match=f"no {missing}/ folder") as error:
        find_pairs(tmp_path)
    assert "ROOT/input/NAME_raw.wav" in str(error.value)
    assert "ROOT/desired_output/NAME_edit.wav" in str(error.value)


def test_an_empty_folder_has_no_pairs_and_says_what_it_expects(tmp_path):
    (tmp_path / "input").mkdir()
    (tmp_path / "desired_output").mkdir()
    report = find_pairs(tmp_path)
    assert report.pairs == [] and report.skipped == []
    assert "no usable pairs; expected ROOT/input/NAME_raw.wav" in report.summary()
