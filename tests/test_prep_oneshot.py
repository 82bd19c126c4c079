"""helius prep --one_shot: one clip per file from its onset, padded or cut (issue #14 item 1)."""

from __future__ import annotations

import json

import numpy as np
import soundfile as sf
from helpers import write

from helius.cli import main
from helius.data.prep import prepare
from helius.data.segment import PrepSettings

RATE = 16000


def _hit(seconds: float, decay: float = 0.05) -> np.ndarray:
    """A decaying 440 Hz hit that starts at full level on its first sample."""
    t = np.arange(round(seconds * RATE)) / RATE
    return (0.5 * np.sin(2 * np.pi * 440 * t) * np.exp(-t / decay) + 1e-9).astype(np.float32)


def test_short_long_and_silent_files_each_give_one_clip_or_a_reason(tmp_path):
    silence = np.zeros(round(0.2 * RATE), np.float32)
    write(tmp_path / "in" / "short.wav", np.concatenate([silence, _hit(0.3)])[None], RATE)
    write(tmp_path / "in" / "long.wav", _hit(2.5, decay=2.0)[None], RATE)
    write(tmp_path / "in" / "exact.wav", _hit(1.0)[None], RATE)
    write(tmp_path / "in" / "silent.wav", np.zeros((1, RATE), np.float32), RATE)
    settings = PrepSettings(sample_rate=RATE, segment_seconds=1.0, one_shot=True)
    result = prepare(tmp_path / "in", tmp_path / "out", settings, val_fraction=0.0, workers=1)

    assert result.files_ok == 3 and result.segments_train == 3  # nothing dropped as short
    assert result.one_shots_padded == 1 and result.one_shots_cut == 1
    assert [f["file"] for f in result.failed] == ["silent.wav"]
    assert "silent" in result.failed[0]["reason"]
    report = json.loads(result.report_path.read_text())
    assert report["one_shots_padded"] == 1 and report["one_shots_cut"] == 1
    manifest = {
        json.loads(line)["source"]: json.loads(line)
        for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()
    }
    clips = {
        name: sf.read(tmp_path / "out" / entry["segment"])[0] for name, entry in manifest.items()
    }
    assert all(len(clip) == RATE for clip in clips.values())
    # The 0.2 s of leading silence is trimmed: the hit starts within the 2 ms pre-roll.
    short = clips["short.wav"]
    first_loud = int(np.argmax(np.abs(short) > 0.05))
    assert first_loud <= round(0.003 * RATE)
    assert abs(manifest["short.wav"]["offset_seconds"] - 0.198) < 0.001  # 0.2 s - pre-roll
    assert np.abs(short[round(0.5 * RATE) :]).max() == 0  # padded with silence
    # The long file is cut with a fade: loud before it, silent at the very end.
    long = clips["long.wav"]
    assert np.abs(long[: RATE // 2]).max() > 0.2 and abs(long[-1]) < 1e-3


def test_the_clip_preset_prepares_one_shots_by_default(tmp_path, capsys):
    for index, seconds in enumerate((0.15, 0.4, 1.7)):
        write(tmp_path / "in" / f"hit{index}.wav", _hit(seconds)[None], RATE)
    argv = ["prep", "--config", "configs/clip.yaml", "--input_dir", str(tmp_path / "in")]
    argv += ["--output_dir", str(tmp_path / "out"), "--sample_rate", str(RATE), "--workers", "1"]
    assert main([*argv, "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "3 segments" in printed
    assert "one clip per file: 2 shorter files padded with silence, 1 longer ones cut" in printed
