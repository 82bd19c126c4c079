"""helius validate-data: per-file checks and summary; writes nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import noise, sine, snapshot, write

from helius.cli import main
from helius.data.validate import validate_folder

SR = 16000


def make_folder(root):
    write(root / "tone.flac", sine(2.0, SR, channels=2), SR)
    clipped = sine(1.0, SR, amplitude=2.0)  # about 2/3 of the samples hit full scale
    write(root / "loud.wav", np.clip(clipped, -1, 1), SR, subtype="FLOAT")
    half_silent = np.concatenate([noise(1.0, SR), np.zeros((1, SR), np.float32)], axis=1)
    write(root / "sub" / "gap.wav", half_silent, 22050)
    (root / "broken.ogg").write_bytes(b"OggS" + b"\x00" * 50)
    (root / "readme.txt").write_text("not audio")
    return root


def test_checks_measure_duration_rate_channels_clipping_and_silence(tmp_path):
    checks, ignored = validate_folder(make_folder(tmp_path))
    by_name = {check.file: check for check in checks}
    assert ignored == ["readme.txt"]
    tone, loud, gap = by_name["tone.flac"], by_name["loud.wav"], by_name["sub/gap.wav"]
    assert (tone.ok, tone.duration_seconds, tone.sample_rate, tone.channels) == (True, 2.0, SR, 2)
    assert tone.clipped_percent == 0.0 and tone.silent_percent == 0.0
    expected_clipped = 100 * np.mean(np.abs(sine(1.0, SR, amplitude=2.0)) >= 0.999)
    assert loud.clipped_percent == pytest.approx(expected_clipped, abs=0.01)
    assert gap.sample_rate == 22050 and gap.silent_percent == pytest.approx(50.0, abs=3.0)
    assert not by_name["broken.ogg"].ok and by_name["broken.ogg"].reason


def test_cli_prints_a_table_and_json_and_writes_nothing(tmp_path, capsys):
    folder = make_folder(tmp_path / "in")
    before = snapshot(folder)
    assert main(["validate-data", str(folder), "--quiet"]) == 0
    table = capsys.readouterr().out
    assert "tone.flac" in table and "FAIL" in table
    assert "3 of 4 audio files decode" in table and "1 non-audio files ignored" in table
    assert (
        main(
            [
                "validate-data",
                str(folder),
                "--json",
                "--workers",
                "2",
                "--silence_threshold_db",
                "-200",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert len(report["files"]) == 4
    assert all(item["silent_percent"] == 0.0 for item in report["files"] if item["ok"])
    assert snapshot(folder) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_cli_fails_when_nothing_decodes(tmp_path, capsys):
    (tmp_path / "x.wav").write_bytes(b"nope")
    assert main(["validate-data", str(tmp_path), "--quiet"]) == 1
    assert main(["validate-data", str(tmp_path / "missing")]) == 1
    assert "is not a folder" in capsys.readouterr().err
