"""`helius explore`: serves on 127.0.0.1 unless told otherwise, prints its URL, fails clearly."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from helius.cli import main


def test_a_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert main(["explore", "--vae_ckpt", str(tmp_path / "none.pt"), "--port", "0"]) == 1
    assert "none.pt does not exist" in capsys.readouterr().err


def test_a_taken_port_is_a_clear_error(clip_checkpoint, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["explore", "--vae_ckpt", str(clip_checkpoint), "--port", str(port)]) == 1
    assert "choose another --port" in capsys.readouterr().err


def test_explore_serves_the_page_on_localhost(clip_checkpoint, clips, tmp_path):
    command = [sys.executable, "-m", "helius", "explore", "--vae_ckpt", str(clip_checkpoint)]
    command += ["--data", str(clips), "--port", "0", "--run_dir", str(tmp_path / "runs")]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("Helius explorer: http://127.0.0.1:"), process.stderr.read()
        url = line.split()[2]
        deadline = time.monotonic() + 60  # the URL is printed just before uvicorn listens
        while True:
            try:
                with urllib.request.urlopen(url + "api/info", timeout=30) as response:
                    assert json.loads(response.read())["kind"] == "clip_vae"
                break
            except urllib.error.URLError as error:
                if isinstance(error, urllib.error.HTTPError) or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        with urllib.request.urlopen(url, timeout=30) as response:
            assert b"Helius explorer" in response.read()
        # Served locally, it answers only to local host names (DNS rebinding).
        request = urllib.request.Request(url + "api/info", headers={"Host": "evil.example"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == 400
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    assert process.returncode in (0, -signal.SIGINT)
    assert not (tmp_path / "runs").exists() or os.listdir(tmp_path / "runs") == []
