"""Bad input and load: non-audio and oversize uploads, escaping preset names, host checks,
and many concurrent requests against a real server leaving every preset valid."""

from __future__ import annotations

import json
import random
import tempfile
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from ui_helpers import running_server

from helius.explore import PresetStore


def uploads_left() -> set[str]:
    return {path.name for path in Path(tempfile.gettempdir()).glob("helius-upload-*")}


def test_non_audio_upload_is_a_400_that_names_no_temp_file(client, tmp_path):
    before = uploads_left()
    for name, content in [("notes.wav", b"hello, not audio"), ("x.txt", b"\x00" * 2000)]:
        response = client.post("/api/encode", files={"file": (name, content)})
        assert response.status_code == 400
        detail = response.json()["detail"]
        assert "not a readable audio file" in detail and "helius-upload-" not in detail
    assert uploads_left() == before  # temp files are removed, whatever happened


def test_upload_needs_a_file_field(client):
    empty = client.post("/api/encode", files={"file": ("a.wav", b"")})
    assert empty.status_code == 400 and "empty" in empty.json()["detail"]
    other_field = client.post("/api/encode", files={"sound": ("a.wav", b"RIFF")})
    assert other_field.status_code == 400 and "'file'" in other_field.json()["detail"]
    raw = client.post("/api/encode", content=b"RIFF....", headers={"Content-Type": "audio/wav"})
    assert raw.status_code == 400 and "multipart" in raw.json()["detail"]


def test_oversize_upload_is_a_413(make_client, clips):
    limit = 5_000
    client = make_client(max_upload_bytes=limit)
    before = uploads_left()
    # Just over the limit: refused after counting the file's bytes.
    response = client.post("/api/encode", files={"file": ("big.wav", b"\x00" * (limit + 1))})
    assert response.status_code == 413 and "limit" in response.json()["detail"]
    # Far over: refused while the body streams in, before any parsing.
    response = client.post("/api/encode", files={"file": ("big.wav", b"\x00" * (20 * limit))})
    assert response.status_code == 413
    # A declared Content-Length over the limit is refused before anything is read.
    response = client.post(
        "/api/encode",
        content=b"x" * 10,
        headers={
            "Content-Type": "multipart/form-data; boundary=abc",
            "Content-Length": str(100 * limit),
        },
    )
    assert response.status_code == 413
    assert uploads_left() == before
    # A small real file still goes through.
    with open(clips / "sine_0.wav", "rb") as handle:
        small = handle.read()
    assert len(small) > limit  # 0.3 s at 16 kHz: too big for this limit ...
    bigger = make_client(max_upload_bytes=len(small))  # ... and exactly at this one
    assert bigger.post("/api/encode", files={"file": ("ok.wav", small)}).status_code == 200


@pytest.mark.parametrize(
    "name", ["../evil", "../../evil", "/tmp/evil", "a/b", ".hidden", "..", "", "x" * 65, "ä\n"]
)
def test_preset_names_cannot_leave_the_folder(client, tmp_path, name):
    before = set(tmp_path.rglob("*"))
    response = client.post("/api/presets", json={"name": name, "latent": [0.0] * 4})
    assert response.status_code == 400, response.text
    assert "preset" in response.json()["detail"]
    for path, body in [
        ("/api/presets/load", {"name": name}),
        ("/api/presets/delete", {"name": name}),
        ("/api/presets/rename", {"old": name, "new": "fine"}),
    ]:
        assert client.post(path, json=body).status_code == 400
    client.post("/api/presets", json={"name": "fine", "latent": [0.0] * 4})
    renamed = client.post("/api/presets/rename", json={"old": "fine", "new": name})
    assert renamed.status_code == 400
    created = set(tmp_path.rglob("*")) - before
    assert all(path.is_relative_to(tmp_path / "presets") for path in created), created
    assert sorted(p.name for p in (tmp_path / "presets").iterdir()) == [
        ".presets.lock",
        "fine.json",
    ]
    assert not (tmp_path / "evil.json").exists() and not Path("/tmp/evil.json").exists()


def test_allowed_hosts_refuse_other_host_headers(make_client):
    client = make_client(allowed_hosts=["127.0.0.1", "localhost"])
    assert client.get("/api/info", headers={"Host": "evil.example"}).status_code == 400
    assert client.get("/api/info", headers={"Host": "127.0.0.1:8765"}).status_code == 200


def test_many_concurrent_requests_leave_every_preset_valid(clip_checkpoint, clips, tmp_path):
    """8 threads x 25 requests mixing preset writes, renames, reads and decodes on uvicorn."""
    from helius.ui import create_app

    app = create_app(
        clip_checkpoint, data_dir=clips, run_dir=tmp_path / "runs", preset_dir=tmp_path / "p"
    )
    errors: list[str] = []
    names = [f"shared {k}" for k in range(4)]

    def call(base: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            base + path, data=data, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def worker(base: str, thread: int) -> None:
        rng = random.Random(thread)
        for request in range(25):
            latent = [round(rng.uniform(-2, 2), 4) for _ in range(4)]
            kind = request % 5
            if kind in (0, 1):  # everyone overwrites the same few names
                body = {"name": rng.choice(names), "latent": latent, "meta": {"t": thread}}
                status, _ = call(base, "/api/presets", body)
            elif kind == 2:
                own = f"t{thread} r{request}"
                call(base, "/api/presets", {"name": own, "latent": latent})
                status, _ = call(base, "/api/presets/rename", {"old": own, "new": own + " b"})
            elif kind == 3:
                status, body = call(base, "/api/presets")
                json.loads(body)
            else:
                status, body = call(base, "/api/decode", {"latent": latent})
                if status == 200 and body[:4] != b"RIFF":
                    errors.append(f"thread {thread}: decode gave no WAV")
            if status != 200:
                errors.append(f"thread {thread} request {request}: {status}")

    with running_server(app) as base:
        for name in names:
            assert call(base, "/api/presets", {"name": name, "latent": [0.0] * 4})[0] == 200
        threads = [threading.Thread(target=worker, args=(base, k)) for k in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assert not any(thread.is_alive() for thread in threads)
        listed = json.loads(call(base, "/api/presets")[1])["presets"]

    assert errors == []
    store = PresetStore(tmp_path / "p")
    assert len(listed) == len(store.list()) == 4 + 8 * 5  # the shared ones + one per rename
    for name in store.list():
        latent, meta = store.load(name)  # every file parses and holds a valid latent
        assert latent.shape == (4,) and meta["kind"] == "clip_vae"
    assert not [path for path in (tmp_path / "p").iterdir() if path.suffix == ".tmp"]
