"""The Train tab: form -> `helius train` command, real runs started, watched and stopped, and
TensorBoard on a free local port."""

from __future__ import annotations

import sys
import time
import urllib.request
from pathlib import Path

import pytest
from helpers import REPO, write

from helius.audio.synth import make_texture
from helius.data.prep import prepare
from helius.data.segment import PrepSettings
from helius.ui.schemas import TrainRequest
from helius.ui.training import TrainingManager, free_port, tensorboard_command

TINY = str(REPO / "configs" / "tiny.yaml")


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("train_data")
    for index, kind in enumerate(("pluck", "pad", "noise_sweep")):
        audio, _ = make_texture(kind, index, sample_rate=16000, duration_seconds=3.0)
        write(root / "audio" / f"{kind}.wav", audio[None], 16000)
    settings = PrepSettings(sample_rate=16000, segment_seconds=1.0)
    prepare(root / "audio", root / "data", settings, val_fraction=0.3, workers=1)
    return root / "data"


def fields(data: Path, **extra) -> dict:
    return {
        "train_index": str(data / "train_index.txt"),
        "val_index": str(data / "val_index.txt"),
        "batch_size": 2,
        "device": "cpu",
        **extra,
    }


def wait_for(client, done, timeout: float = 240.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = client.get("/api/train/status").json()
        if done(status):
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.5)


def test_form_shows_the_configs_values(client, monkeypatch):
    monkeypatch.chdir(REPO)
    form = client.get("/api/train/form", params={"config": "configs/tiny.yaml"}).json()
    assert "configs/tiny.yaml" in form["configs"]
    values = {field["name"]: field["value"] for field in form["fields"]}
    keys = {field["name"]: field["key"] for field in form["fields"]}
    assert values["latent_dim"] == 4 and values["learning_rate"] == 0.001
    assert keys["beta"] == "train.kl.beta" and values["max_steps"] is None
    defaults = client.get("/api/train/form").json()
    assert {f["name"]: f["value"] for f in defaults["fields"]}["latent_dim"] == 64


def test_command_maps_the_form_to_config_keys(tmp_path):
    manager = TrainingManager(tmp_path)
    request = TrainRequest(
        config=TINY,
        fields={"epochs": 3, "learning_rate": 0.01, "max_steps": "", "train_index": None},
        overrides=["train.lr_schedule=cosine"],
    )
    command = manager.command_for(request, tmp_path / "run")
    assert command[:6] == [sys.executable, "-m", "helius", "train", "--config", TINY]
    sets = [command[k + 1] for k, word in enumerate(command) if word == "--set"]
    assert sets == [
        "train.epochs=3",
        "train.learning_rate=0.01",
        "train.lr_schedule=cosine",
        f"train.log_dir={tmp_path / 'run' / 'logs'}",
        f"train.checkpoint_dir={tmp_path / 'run' / 'checkpoints'}",
    ]


def test_bad_forms_are_refused_before_anything_starts(client, tmp_path):
    cases = [
        ({"config": TINY, "fields": {"batch_size": -1}}, "train.batch_size"),
        ({"config": TINY, "fields": {"sparkle": 1}}, "sparkle"),
        ({"config": TINY, "overrides": ["train.nope=1"]}, "train.nope"),
        ({"config": "notes.txt"}, ".yaml"),
        ({"config": str(tmp_path / "missing.yaml")}, "does not exist"),
        ({"config": TINY, "fields": {"device": "cpu\nrm -rf"}}, "single lines"),
    ]
    for body, message in cases:
        response = client.post("/api/train/start", json=body)
        assert response.status_code == 400, body
        assert message in response.json()["detail"], response.json()
    assert not (tmp_path / "runs").exists()  # no run folder for a refused form
    assert client.get("/api/train/status").json()["running"] is False


def test_a_run_trains_to_the_end_and_its_loss_is_charted(client, tiny_data, tmp_path):
    form = fields(tiny_data, max_steps=4, epochs="null", val_every_steps=2)
    body = {"config": TINY, "fields": form}
    started = client.post("/api/train/start", json=body)
    assert started.status_code == 200, started.text
    run = started.json()["run"]
    assert Path(run["folder"]).parent == (tmp_path / "runs").resolve()
    status = wait_for(client, lambda status: not status["running"])
    assert status["run"]["returncode"] == 0, status["log"]
    series = status["series"]
    assert [step for step, _ in series["train/loss"]] == [1, 2, 3, 4]
    assert "val/score" in series and series["progress/loss"][-1][0] == 4
    assert (Path(run["folder"]) / "checkpoints" / "last.pt").is_file()
    assert "trained wave_vae to step 4" in status["log"]


def test_a_run_stops_on_request_and_saves(client, tiny_data):
    body = {"config": TINY, "fields": fields(tiny_data, epochs=10000)}
    assert client.post("/api/train/start", json=body).status_code == 200
    # Live loss from the progress output, long before TensorBoard flushes its file.
    status = wait_for(client, lambda status: len(status["series"].get("progress/loss", [])) >= 2)
    assert status["running"]
    assert client.post("/api/train/start", json=body).status_code == 409  # one run at a time
    stopped = client.post("/api/train/stop").json()
    assert stopped["running"] is False and stopped["run"]["returncode"] is not None
    folder = Path(stopped["run"]["folder"])
    assert (folder / "checkpoints" / "last.pt").is_file()  # the trainer saved on SIGINT
    assert "interrupted" in stopped["log"]


def test_tensorboard_runs_on_a_free_local_port(make_client, tmp_path):
    port = free_port()
    assert 1024 <= port <= 65535
    assert tensorboard_command(tmp_path, port)[-6:] == [
        "--logdir",
        str(tmp_path),
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
    ]
    client = make_client()
    launched = client.post("/api/tensorboard").json()
    assert launched["url"] == f"http://127.0.0.1:{launched['port']}/"
    assert launched["command"][-2:] == ["--host", "127.0.0.1"]
    assert launched["command"][launched["command"].index("--logdir") + 1] == str(tmp_path / "runs")
    status = wait_for(client, lambda status: status["tensorboard"]["ready"], timeout=90)
    with urllib.request.urlopen(status["tensorboard"]["url"], timeout=30) as page:
        assert page.status == 200
    assert client.post("/api/tensorboard").json()["port"] == launched["port"]  # reused
    process = client.app.state.training.tensorboard
    client.app.state.training.shutdown()
    assert process.poll() is not None
