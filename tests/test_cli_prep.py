"""`helius prep` and `python data_prep.py` from the command line: every flag, progress, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
from helpers import noise, write

from helius import progress
from helius.cli import main

REPO = Path(__file__).resolve().parents[1]
SR_IN = 22050


@pytest.fixture
def corpus(tmp_path) -> Path:
    for index in range(3):
        write(
            tmp_path / "in" / f"take{index}.wav", noise(1.2, SR_IN, channels=2, seed=index), SR_IN
        )
    return tmp_path / "in"


def report(folder: Path) -> dict:
    return json.loads((folder / "prep_report.json").read_text())


def first_segment(folder: Path) -> sf._SoundFileInfo:
    return sf.info(str(folder / (folder / "train_index.txt").read_text().splitlines()[0]))


def test_every_prep_flag_reaches_the_result(corpus, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        [
            "prep",
            "--input_dir",
            str(corpus),
            "--output_dir",
            str(out),
            "--segment_length",
            "0.25",
            "--sample_rate",
            "8000",
            "--val_fraction",
            "0.5",
            "--silence_threshold_db",
            "-30",
            "--stereo",
            "--workers",
            "2",
            "--quiet",
        ]
    )
    assert code == 0
    assert "prepared 3 of 3 audio files" in capsys.readouterr().out
    settings = report(out)["settings"]
    assert settings == {
        "sample_rate": 8000,
        "segment_seconds": 0.25,
        "mono": False,
        "silence_threshold_db": -30.0,
        "subtype": "PCM_16",
        "one_shot": False,
        "val_fraction": 0.5,
    }
    info = first_segment(out)
    assert (info.samplerate, info.channels, info.frames) == (8000, 2, 2000)
    assert report(out)["segments_train"] + report(out)["segments_val"] == 3 * 4

    assert (
        main(
            [
                "prep",
                "--input-dir",
                str(corpus),
                "--output-dir",
                str(out),
                "--segment-length",
                "0.25",
                "--sample-rate",
                "8000",
                "--stereo",
                "--silence-threshold-db",
                "-30",
                "--val-fraction",
                "0.5",
                "--quiet",
            ]
        )
        == 0
    )
    assert report(out)["files_unchanged"] == 3
    assert (
        main(
            [
                "prep",
                "--input_dir",
                str(corpus),
                "--output_dir",
                str(out),
                "--quiet",
                "--segment_length",
                "0.25",
                "--sample_rate",
                "8000",
                "--stereo",
                "--silence_threshold_db",
                "-30",
                "--val_fraction",
                "0.5",
                "--overwrite",
            ]
        )
        == 0
    )
    assert report(out)["files_processed"] == 3


def test_config_and_set_give_the_defaults_and_flags_win(corpus, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("data:\n  sample_rate: 16000\n  segment_seconds: 0.5\n")
    assert (
        main(
            [
                "prep",
                "--input_dir",
                str(corpus),
                "--output_dir",
                str(tmp_path / "a"),
                "--config",
                str(config),
                "--set",
                "data.val_fraction=0",
                "--quiet",
            ]
        )
        == 0
    )
    assert (first_segment(tmp_path / "a").samplerate, report(tmp_path / "a")["segments_val"]) == (
        16000,
        0,
    )
    assert (
        main(
            [
                "prep",
                "--input_dir",
                str(corpus),
                "--output_dir",
                str(tmp_path / "b"),
                "--config",
                str(config),
                "--sample_rate",
                "8000",
                "--quiet",
            ]
        )
        == 0
    )
    assert first_segment(tmp_path / "b").samplerate == 8000


def test_progress_bar_shows_files_hours_and_eta(corpus, tmp_path, capsys):
    progress.set_enabled(True)
    from helius.data.prep import prepare
    from helius.data.segment import PrepSettings

    prepare(corpus, tmp_path / "out", PrepSettings(16000, 0.5), workers=1)
    bar = capsys.readouterr().err
    assert "3/3" in bar and "h audio" in bar and "<00:00" in bar  # files, hours, ETA


def test_errors_are_one_line_with_exit_code_1(tmp_path, capsys):
    assert (
        main(["prep", "--input_dir", str(tmp_path / "nope"), "--output_dir", str(tmp_path / "o")])
        == 1
    )
    assert "is not a folder" in capsys.readouterr().err
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.wav").write_bytes(b"junk")
    assert (
        main(
            [
                "prep",
                "--input_dir",
                str(tmp_path / "in"),
                "--output_dir",
                str(tmp_path / "o"),
                "--quiet",
            ]
        )
        == 1
    )
    error = capsys.readouterr().err
    assert "no usable audio" in error and "Traceback" not in error


def test_seed_script_data_prep_py_takes_the_same_flags(corpus, tmp_path):
    out = tmp_path / "data"
    completed = subprocess.run(
        [
            sys.executable,
            str(REPO / "data_prep.py"),
            "--input_dir",
            str(corpus),
            "--output_dir",
            str(out),
            "--segment_length",
            "0.5",
            "--sample_rate",
            "16000",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "prepared 3 of 3" in completed.stdout
    assert (out / "train_index.txt").is_file() and (out / "val_index.txt").is_file()


@pytest.mark.parametrize(
    "command", [[], ["config", "show"], ["prep"], ["validate-data"], ["demo-data"], ["demo"]]
)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: helius" in capsys.readouterr().out


def test_python_dash_m_helius_runs():
    completed = subprocess.run(
        [sys.executable, "-m", "helius", "--version"], capture_output=True, text=True, check=True
    )
    assert completed.stdout.startswith("helius ")
