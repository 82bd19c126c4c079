"""`helius demo-data`, `helius demo` (tiny mode, end to end) and `helius report`."""

from __future__ import annotations

import base64
import io
import itertools
import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest
import soundfile as sf
import torch

from helius.cli import main
from helius.report.page import SECTIONS


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


def test_tiny_demo_runs_every_stage_and_writes_a_complete_report(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["demo", "--out", str(run), "--tiny", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "demo finished" in printed and "x real time" in printed
    assert "real time (1 thread)" in printed and "dreaming" in printed
    assert f"helius explore --vae_ckpt {run / 'checkpoints' / 'clip' / 'best.pt'}" in printed
    record = json.loads((run / "run.json").read_text())
    assert [stage["name"] for stage in record["stages"]] == [
        "data",
        "wave VAE",
        "clip VAE",
        "prior",
        "dream",
        "stream",
        "export",
        "latent map",
        "report",
    ]
    assert (run / "model.ts").is_file()
    # Block-at-a-time stages run on one thread, training on the machine's default.
    threads = record["speed"]["threads"]
    assert threads["stream"] == threads["dream"] == 1
    assert threads["wave VAE"] == torch.get_num_threads()
    page = (run / "report.html").read_text()
    assert "streaming transformation (x real time), 1 thread(s)" in page
    for name in ("wave VAE", "clip VAE", "prior"):
        assert (run / record["checkpoints"][name]).is_file()
    # The follow metrics of the wave VAE, next to the static baseline, with a verdict.
    fidelity = record["fidelity"]
    assert set(fidelity["rows"]) == {"model", "static baseline"}
    assert abs(fidelity["rows"]["static baseline"]["loudness_diff_db"]) < 0.5
    assert fidelity["verdict"].startswith("The model ")
    check_report(run / "report.html")
    assert fidelity["verdict"] in (run / "report.html").read_text()


def check_report(path):
    page = path.read_text()
    parser = _Sections()
    parser.feed(page)
    assert set(SECTIONS) <= parser.ids
    assert "http://" not in page and "https://" not in page  # self-contained
    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert len(images) >= 3  # losses, spectrograms, latent map
    for data in images:
        assert base64.b64decode(data).startswith(b"\x89PNG\r\n\x1a\n")
    sounds = re.findall(r"data:audio/wav;base64,([A-Za-z0-9+/=]+)", page)
    assert len(sounds) == 7
    for data in sounds:
        audio, rate = sf.read(io.BytesIO(base64.b64decode(data)), dtype="float32")
        assert rate > 0 and len(audio) > 0 and np.isfinite(audio).all()


class _Sections(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        if tag == "section":
            self.ids.update(value for name, value in attrs if name == "id")


def test_report_command_rewrites_the_page_and_explains_a_missing_run(tmp_path, capsys):
    assert main(["report", "--run", str(tmp_path)]) == 1
    assert "run.json does not exist" in capsys.readouterr().err


def test_time_left_counts_the_training_stages_still_to_come():
    """The demo's "about N min left": the budget shares of the training stages not yet run."""
    from helius.demo import QUICK_STAGE_MINUTES, SHARES, minutes_left

    names = ["data", "wave VAE", "clip VAE", "prior", "dream", "stream", "report"]
    estimates = [minutes_left(names, index, 5.0) for index in range(len(names))]
    training = 5.0 * sum(SHARES.values())
    assert estimates[0] == pytest.approx(training + 4 * QUICK_STAGE_MINUTES)
    assert estimates[2] == pytest.approx(
        5.0 * (SHARES["clip"] + SHARES["prior"]) + 3 * QUICK_STAGE_MINUTES
    )
    assert estimates[4:] == pytest.approx(
        [3 * QUICK_STAGE_MINUTES, 2 * QUICK_STAGE_MINUTES, QUICK_STAGE_MINUTES]
    )
    assert all(later < earlier for earlier, later in itertools.pairwise(estimates))
