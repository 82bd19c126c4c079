"""Data set downloads against a local HTTP server: resume, checksums, unsafe archives, offline
messages, and the MAESTRO/GTZAN layout readers, on tiny archives with the real layouts."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import socket
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from helius.errors import ConfigError, DataError
from helius.harmonic.download import SOURCES, Source, download
from helius.harmonic.layouts import (
    GTZAN_GENRES,
    MAESTRO_COLUMNS,
    gtzan_files,
    maestro_files,
    verify_layout,
)

SAMPLE_RATE = 16000
# The smallest valid MIDI file: a header and one empty track.
MIDI = b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x00\x60MTrk\x00\x00\x00\x04\x00\xff\x2f\x00"
MAESTRO_ROWS = [
    ("Johann Sebastian Bach", "Prelude in C Major", "train", 2004, "2004/bach"),
    ("Frédéric Chopin", "Ballade No. 1", "train", 2006, "2006/chopin"),
    ("Claude Debussy", "Clair de lune", "validation", 2009, "2009/debussy"),
    ("Franz Liszt", "La campanella", "test", 2018, "2018/liszt"),
]


class RangeHandler(BaseHTTPRequestHandler):
    """Serves server.root; honours `Range: bytes=N-` unless server.ignore_range; while
    server.cuts > 0, sends only server.cut_at bytes of a body and drops the connection."""

    def do_GET(self) -> None:
        server = self.server
        requested = self.headers.get("Range")
        server.requests.append((self.path, requested))
        path = server.root / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = 0
        if requested and not server.ignore_range:
            start = int(requested.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if server.cuts > 0:
            server.cuts -= 1
            body = body[: server.cut_at]
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    # urllib would send even 127.0.0.1 through a proxy named in the environment.
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server(tmp_path) -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    httpd.root = tmp_path / "www"
    httpd.root.mkdir()
    httpd.requests, httpd.cuts, httpd.cut_at, httpd.ignore_range = [], 0, 0, False
    # A short poll keeps shutdown() from waiting half a second per test.
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def tone(seconds: float = 0.05, freq_hz: float = 440.0) -> np.ndarray:
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.3 * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def make_maestro(base: Path) -> Path:
    """base/maestro-v3.0.0 with the real CSV columns, a JSON, and year folders of wav + midi."""
    root = base / "maestro-v3.0.0"
    records = []
    for index, (composer, title, split, year, stem) in enumerate(MAESTRO_ROWS):
        (root / stem).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / f"{stem}.wav", tone(freq_hz=220.0 * (index + 1)), SAMPLE_RATE)
        (root / f"{stem}.midi").write_bytes(MIDI)
        records.append((composer, title, split, year, f"{stem}.midi", f"{stem}.wav", 0.05))
    with (root / "maestro-v3.0.0.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(MAESTRO_COLUMNS)
        writer.writerows(records)
    # The published JSON is column -> {row index -> value}.
    columns = {
        column: {str(i): record[k] for i, record in enumerate(records)}
        for k, column in enumerate(MAESTRO_COLUMNS)
    }
    (root / "maestro-v3.0.0.json").write_text(json.dumps(columns), encoding="utf-8")
    return root


def make_gtzan(base: Path, genres: tuple[str, ...] = GTZAN_GENRES, per_genre: int = 1) -> Path:
    root = base / "genres"
    for index, genre in enumerate(genres):
        (root / genre).mkdir(parents=True)
        for n in range(per_genre):
            sf.write(root / genre / f"{genre}.{n:05d}.wav", tone(0.02, 100.0 + index), SAMPLE_RATE)
    (root / "input.mf").write_text("a Marsyas collection file, not audio\n")
    return root


def zip_folder(folder: Path, archive: Path) -> bytes:
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in sorted(folder.rglob("*")):
            bundle.write(path, path.relative_to(folder.parent).as_posix())
    return archive.read_bytes()


def source_for(dataset: str, server: ThreadingHTTPServer, data: bytes, **changes) -> Source:
    """The real table entry, served from the test server, with this archive's size and hash."""
    real = SOURCES[dataset]
    port = server.server_address[1]
    return dataclasses.replace(
        real,
        urls=(f"http://127.0.0.1:{port}/{real.archive}",),
        size=len(data),
        checksum=("sha256", hashlib.sha256(data).hexdigest()),
        **changes,
    )


@pytest.fixture
def maestro_zip(tmp_path, server) -> bytes:
    """The fake MAESTRO archive's bytes, also served as /maestro-v3.0.0.zip."""
    built = make_maestro(tmp_path / "build")
    return zip_folder(built, server.root / "maestro-v3.0.0.zip")


def leftovers(dataset_dir: Path) -> list[str]:
    """Anything half-written: .part files and extraction folders."""
    return sorted(
        p.name for p in dataset_dir.iterdir() if ".part" in p.name or ".extract" in p.name
    )


def test_download_extracts_and_verifies_maestro(tmp_path, server, maestro_zip):
    sources = {"maestro": source_for("maestro", server, maestro_zip)}
    root = download("maestro", tmp_path / "data", sources=sources, progress=False)
    assert root == tmp_path / "data" / "maestro-v3.0.0"
    assert (root / "maestro-v3.0.0.csv").is_file()
    assert sorted(p.name for p in (root / "2004").iterdir()) == ["bach.midi", "bach.wav"]
    verify_layout("maestro", root)
    assert leftovers(tmp_path / "data") == []
    assert not (tmp_path / "data" / "maestro-v3.0.0.zip").exists()  # keep_archive=False
    assert server.requests == [("/maestro-v3.0.0.zip", None)]


def test_download_extracts_gtzan_tar(tmp_path, server):
    built = make_gtzan(tmp_path / "build")
    with tarfile.open(server.root / "genres.tar.gz", "w:gz") as bundle:
        bundle.add(built, arcname="genres")
    data = (server.root / "genres.tar.gz").read_bytes()
    sources = {"gtzan": source_for("gtzan", server, data)}
    root = download("gtzan", tmp_path / "data", sources=sources, progress=False, keep_archive=True)
    assert root == tmp_path / "data" / "genres"
    assert {genre for _, genre in gtzan_files(root)} == set(GTZAN_GENRES)
    assert (tmp_path / "data" / "genres.tar.gz").read_bytes() == data


def test_interrupted_download_resumes_with_range(tmp_path, server, maestro_zip):
    server.cuts, server.cut_at = 1, len(maestro_zip) // 3
    sources = {"maestro": source_for("maestro", server, maestro_zip)}
    download("maestro", tmp_path / "data", sources=sources, progress=False, keep_archive=True)
    assert server.requests == [
        ("/maestro-v3.0.0.zip", None),
        ("/maestro-v3.0.0.zip", f"bytes={server.cut_at}-"),
    ]
    assert (tmp_path / "data" / "maestro-v3.0.0.zip").read_bytes() == maestro_zip


def test_download_that_keeps_breaking_keeps_part_and_resumes_on_rerun(
    tmp_path, server, maestro_zip
):
    server.cuts, server.cut_at = 1000, 1000
    sources = {"maestro": source_for("maestro", server, maestro_zip)}
    with pytest.raises(DataError, match="rerun to resume"):
        download("maestro", tmp_path / "data", sources=sources, progress=False)
    part = tmp_path / "data" / "maestro-v3.0.0.zip.part"
    held = part.stat().st_size
    assert 0 < held < len(maestro_zip)
    assert part.read_bytes() == maestro_zip[:held]
    assert not (tmp_path / "data" / "maestro-v3.0.0").exists()

    server.cuts = 0
    root = download("maestro", tmp_path / "data", sources=sources, progress=False)
    assert server.requests[-1] == ("/maestro-v3.0.0.zip", f"bytes={held}-")
    verify_layout("maestro", root)
    assert leftovers(tmp_path / "data") == []


def test_next_url_is_tried_when_the_first_fails(tmp_path, server, maestro_zip):
    source = source_for("maestro", server, maestro_zip)
    port = server.server_address[1]
    source = dataclasses.replace(source, urls=(f"http://127.0.0.1:{port}/gone.zip", *source.urls))
    root = download("maestro", tmp_path / "data", sources={"maestro": source}, progress=False)
    verify_layout("maestro", root)
    assert [path for path, _ in server.requests] == ["/gone.zip", "/maestro-v3.0.0.zip"]


def test_server_that_ignores_range_restarts_cleanly(tmp_path, server, maestro_zip):
    server.ignore_range = True
    dataset_dir = tmp_path / "data"
    dataset_dir.mkdir()
    stale = b"stale bytes from elsewhere"
    (dataset_dir / "maestro-v3.0.0.zip.part").write_bytes(stale)
    sources = {"maestro": source_for("maestro", server, maestro_zip)}
    download("maestro", dataset_dir, sources=sources, progress=False, keep_archive=True)
    assert server.requests == [("/maestro-v3.0.0.zip", f"bytes={len(stale)}-")]
    assert (dataset_dir / "maestro-v3.0.0.zip").read_bytes() == maestro_zip


def test_wrong_checksum_is_set_aside_and_a_rerun_against_a_fixed_server_works(
    tmp_path, server, maestro_zip
):
    sources = {"maestro": source_for("maestro", server, maestro_zip)}
    damaged = bytearray(maestro_zip)
    damaged[len(damaged) // 2] ^= 0xFF
    (server.root / "maestro-v3.0.0.zip").write_bytes(bytes(damaged))
    dataset_dir = tmp_path / "data"
    with pytest.raises(DataError) as caught:
        download("maestro", dataset_dir, sources=sources, progress=False)
    message = str(caught.value)
    assert str(dataset_dir / "maestro-v3.0.0.zip") in message
    assert "sha256" in message and "delete" in message and "rerun" in message
    assert (dataset_dir / "maestro-v3.0.0.zip.corrupt").read_bytes() == bytes(damaged)
    assert leftovers(dataset_dir) == []
    assert not (dataset_dir / "maestro-v3.0.0").exists()

    (server.root / "maestro-v3.0.0.zip").write_bytes(maestro_zip)
    root = download("maestro", dataset_dir, sources=sources, progress=False)
    verify_layout("maestro", root)
    assert server.requests[-1] == ("/maestro-v3.0.0.zip", None)  # started clean, no resume


def test_archive_with_right_checksum_that_is_not_a_zip(tmp_path, server):
    data = b"<html>not an archive</html>\n" * 40
    (server.root / "maestro-v3.0.0.zip").write_bytes(data)
    sources = {"maestro": source_for("maestro", server, data)}
    dataset_dir = tmp_path / "data"
    with pytest.raises(DataError, match="not a valid zip archive") as caught:
        download("maestro", dataset_dir, sources=sources, progress=False)
    assert "maestro-v3.0.0.zip.corrupt" in str(caught.value)
    assert (dataset_dir / "maestro-v3.0.0.zip.corrupt").is_file()
    assert not (dataset_dir / "maestro-v3.0.0.zip").exists()
    assert leftovers(dataset_dir) == [] and not (dataset_dir / "maestro-v3.0.0").exists()


def test_extracted_dataset_already_present_is_not_downloaded_again(tmp_path, server, maestro_zip):
    dataset_dir = tmp_path / "data"
    make_maestro(dataset_dir)
    sources = {"maestro": source_for("maestro", server, maestro_zip)}
    assert download("maestro", dataset_dir, sources=sources) == dataset_dir / "maestro-v3.0.0"
    assert server.requests == []


def test_archive_placed_by_hand_is_only_verified_and_extracted(tmp_path, server, maestro_zip):
    dataset_dir = tmp_path / "data"
    dataset_dir.mkdir()
    (dataset_dir / "maestro-v3.0.0.zip").write_bytes(maestro_zip)
    sources = {"maestro": source_for("maestro", server, maestro_zip)}
    root = download("maestro", dataset_dir, sources=sources, progress=False)
    verify_layout("maestro", root)
    assert server.requests == []


def test_incomplete_folder_already_there_is_reported_not_overwritten(tmp_path, server, maestro_zip):
    dataset_dir = tmp_path / "data"
    root = make_maestro(dataset_dir)
    (root / "2009" / "debussy.wav").unlink()
    sources = {"maestro": source_for("maestro", server, maestro_zip)}
    with pytest.raises(DataError, match="already exists") as caught:
        download("maestro", dataset_dir, sources=sources, progress=False)
    assert "2009/debussy.wav" in str(caught.value)
    assert server.requests == [] and (root / "2004" / "bach.wav").is_file()


def test_offline_fails_fast_and_says_where_to_put_the_files(tmp_path):
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    offline = dataclasses.replace(
        SOURCES["maestro"], urls=(f"http://127.0.0.1:{port}/maestro-v3.0.0.zip",)
    )
    dataset_dir = tmp_path / "data"
    started = time.perf_counter()
    with pytest.raises(DataError) as caught:
        download("maestro", dataset_dir, sources={"maestro": offline}, progress=False, timeout=5)
    assert time.perf_counter() - started < 5
    message = str(caught.value)
    assert str(dataset_dir / "maestro-v3.0.0.zip") in message
    assert str(dataset_dir / "maestro-v3.0.0" / "maestro-v3.0.0.csv") in message
    assert "only verify and extract" in message
    assert leftovers(dataset_dir) == []


@pytest.mark.parametrize("evil_name", ["../evil.txt", "/tmp/helius-evil.txt", "genres/../../x"])
def test_tar_members_leaving_the_folder_are_refused(tmp_path, server, evil_name):
    built = make_gtzan(tmp_path / "build")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as bundle:
        bundle.add(built, arcname="genres")
        payload = b"should never be written\n"
        member = tarfile.TarInfo(evil_name)
        member.size = len(payload)
        bundle.addfile(member, io.BytesIO(payload))
    (server.root / "genres.tar.gz").write_bytes(buffer.getvalue())
    dataset_dir = tmp_path / "deep" / "data"
    sources = {"gtzan": source_for("gtzan", server, buffer.getvalue())}
    with pytest.raises(DataError, match="refused") as caught:
        download("gtzan", dataset_dir, sources=sources, progress=False)
    assert evil_name in str(caught.value)
    assert not (dataset_dir.parent / "evil.txt").exists()
    assert not (dataset_dir.parent / "x").exists()
    assert not Path("/tmp/helius-evil.txt").exists()
    assert not (dataset_dir / "genres").exists() and leftovers(dataset_dir) == []
    assert (dataset_dir / "genres.tar.gz.corrupt").is_file()


def test_unknown_dataset_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="--dataset"):
        download("nsynth", tmp_path)


def test_maestro_files_by_split_with_metadata(tmp_path):
    root = make_maestro(tmp_path)
    splits = maestro_files(root)
    assert {name: len(files) for name, files in splits.items()} == {
        "train": 2,
        "validation": 1,
        "test": 1,
    }
    audio, metadata = splits["validation"][0]
    assert audio == root / "2009" / "debussy.wav" and audio.is_file()
    assert metadata["composer"] == "Claude Debussy"
    assert metadata["title"] == "Clair de lune"
    assert metadata["year"] == 2009
    assert metadata["midi"] == root / "2009" / "debussy.midi"
    assert [m["composer"] for _, m in splits["train"]] == [
        "Johann Sebastian Bach",
        "Frédéric Chopin",
    ]


def test_maestro_files_reports_missing_audio(tmp_path):
    root = make_maestro(tmp_path)
    (root / "2004" / "bach.wav").unlink()
    (root / "2018" / "liszt.wav").unlink()
    with pytest.raises(DataError, match="2 of 4 audio files") as caught:
        maestro_files(root)
    assert "2004/bach.wav" in str(caught.value) and "2018/liszt.wav" in str(caught.value)


def test_gtzan_files_tags_by_folder(tmp_path):
    root = make_gtzan(tmp_path, genres=("blues", "jazz"), per_genre=2)
    sf.write(root / "jazz" / "jazz.00002.au", tone(0.02), SAMPLE_RATE, format="AU")
    (root / "jazz" / "notes.txt").write_text("not audio")
    files = gtzan_files(root)
    assert [(p.name, genre) for p, genre in files] == [
        ("blues.00000.wav", "blues"),
        ("blues.00001.wav", "blues"),
        ("jazz.00000.wav", "jazz"),
        ("jazz.00001.wav", "jazz"),
        ("jazz.00002.au", "jazz"),
    ]


def test_verify_layout_names_what_is_missing(tmp_path):
    gtzan = make_gtzan(tmp_path / "g", genres=("blues", "jazz"))
    with pytest.raises(DataError, match="classical"):
        verify_layout("gtzan", gtzan)
    maestro = make_maestro(tmp_path / "m")
    (maestro / "maestro-v3.0.0.json").unlink()
    with pytest.raises(DataError, match=r"maestro-v3\.0\.0\.json"):
        verify_layout("maestro", maestro)
    with pytest.raises(DataError, match="does not exist"):
        verify_layout("maestro", tmp_path / "nowhere")
