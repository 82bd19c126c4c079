"""`helius demo-data` and `helius demo`: the built-in data set from the command line."""

from __future__ import annotations

import json

import soundfile as sf

from helius.cli import main


def test_demo_data_writes_sounds_sidecars_and_parameters(tmp_path, capsys):
    out = tmp_path / "sounds"
    assert (
        main(
            [
                "demo-data",
                str(out),
                "--n",
                "5",
                "--textures",
                "2",
                "--seed",
                "3",
                "--sample_rate",
                "22050",
                "--quiet",
            ]
        )
        == 0
    )
    assert "wrote 7 sounds" in capsys.readouterr().out
    oneshots = sorted(p.name for p in (out / "oneshots").glob("*.wav"))
    assert oneshots == [
        "clap_0004.wav",
        "hat_0002.wav",
        "kick_0000.wav",
        "snare_0001.wav",
        "tom_0003.wav",
    ]
    textures = sorted((out / "textures").glob("*.wav"))
    assert [p.name for p in textures] == ["fm_0001.wav", "pluck_0000.wav"]
    info = sf.info(str(textures[0]))
    assert (info.samplerate, info.frames) == (22050, 10 * 22050)
    records = [json.loads(line) for line in (out / "params.jsonl").read_text().splitlines()]
    assert len(records) == 7
    sidecar = json.loads((out / "oneshots" / "kick_0000.json").read_text())
    assert sidecar == records[0] and "pitch_hz" in sidecar["params"]


def test_demo_generates_prepares_and_summarizes(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["demo", "--out", str(run), "--quiet", "--set", "data.sample_rate=16000"]) == 0
    printed = capsys.readouterr().out
    assert "1/2 built-in dataset" in printed and "2/2 prepared 12 of 12 audio files" in printed
    report = json.loads((run / "data" / "prep_report.json").read_text())
    assert report["settings"]["sample_rate"] == 16000
    # 12 ten-second textures at 2 s per segment, split by file with at least one for validation.
    assert (
        report["segments_train"] + report["segments_val"] + report["segments_silent_dropped"] == 60
    )
    assert report["segments_val"] >= 5
