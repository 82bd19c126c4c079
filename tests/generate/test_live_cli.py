"""helius live from the command line, and without sounddevice or PortAudio; the sound card
and the clocks are the test's fakes (live_fakes.py)."""

from __future__ import annotations

import builtins
import sys
import threading
from types import SimpleNamespace

import pytest
import torch
from live_fakes import (
    BLOCK,
    RATE,
    FakeClock,
    FakeStream,
    caught_up,
    fake_factory,
    make_signal,
    tiny_causal_vae,
)

from helius.cli import main
from helius.cli.core import live as live_cli
from helius.errors import MissingToolError
from helius.generate import live
from helius.generate.live import LiveSession
from helius.generate.stream import StreamProcessor


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors gain nothing from threads; a busy machine would make each op wait."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def vae():
    return tiny_causal_vae()


# ---- missing sounddevice / PortAudio -------------------------------------------------------


def test_missing_sounddevice_names_the_install_commands(vae, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import fails with ImportError
    with pytest.raises(MissingToolError, match="pip install sounddevice"):
        live.list_devices()
    session = LiveSession(StreamProcessor(vae), block_size=BLOCK)  # the real stream factory
    with pytest.raises(MissingToolError, match="libportaudio2"):
        session.start()
    assert not any(thread.name == "helius-live-model" for thread in threading.enumerate())
    assert main(["live", "--list-devices"]) == 1
    assert "sudo apt-get install libportaudio2" in capsys.readouterr().err


def test_missing_portaudio_names_the_install_commands(monkeypatch) -> None:
    real_import = builtins.__import__

    def no_portaudio(name, *args, **kwargs):
        if name == "sounddevice":
            raise OSError("PortAudio library not found")  # what sounddevice raises
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_portaudio)
    with pytest.raises(MissingToolError, match="PortAudio library not found") as caught:
        live.open_sound_stream(samplerate=RATE, blocksize=BLOCK)
    assert "sudo apt-get install libportaudio2" in str(caught.value)
    assert "pip install sounddevice" in str(caught.value)


# ---- the command line ---------------------------------------------------------------------

FAKE_DEVICES = [
    {
        "name": "USB Microphone",
        "hostapi": 0,
        "max_input_channels": 1,
        "max_output_channels": 0,
        "default_samplerate": 48000.0,
    },
    {
        "name": "Speakers",
        "hostapi": 0,
        "max_input_channels": 0,
        "max_output_channels": 2,
        "default_samplerate": 44100.0,
    },
]


def test_cli_lists_devices(monkeypatch, capsys) -> None:
    fake_sounddevice = SimpleNamespace(
        query_hostapis=lambda: ({"name": "ALSA"},),
        query_devices=lambda: FAKE_DEVICES,
        default=SimpleNamespace(device=[0, 1]),
    )
    monkeypatch.setattr(live, "_sounddevice", lambda: fake_sounddevice)
    assert main(["live", "--list-devices"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ">   0  USB Microphone (ALSA; 1 in, 0 out; 48000 Hz)"
    assert lines[1] == "<   1  Speakers (ALSA; 0 in, 2 out; 44100 Hz)"
    assert live.list_devices()[1]["default_output"]


class CliClock:
    """The CLI's `time` and `_wait`: each wait plays that many seconds of blocks through the
    fake sound card, in step with the model, and moves the clock on by exactly that much."""

    def __init__(self, made: list[FakeStream]) -> None:
        self.made, self.now, self.waits = made, 0.0, []

    def monotonic(self) -> float:
        return self.now

    def wait(self, seconds: float) -> None:
        self.waits.append(seconds)
        stream = self.made[0]
        session = stream.callback.__self__  # the LiveSession whose callback the card calls
        stream.play(round(seconds * RATE / BLOCK), after=caught_up(session))
        self.now += seconds


def patch_session(monkeypatch, vae, blocks: int) -> CliClock:
    monkeypatch.setattr(live, "load_vae", lambda path: (vae, None))
    factory, made = fake_factory(make_signal(blocks))
    monkeypatch.setattr(live, "open_sound_stream", factory)
    clock = CliClock(made)
    monkeypatch.setattr(live_cli, "time", clock)
    monkeypatch.setattr(live_cli, "_wait", clock.wait)
    monkeypatch.setattr(live, "time", FakeClock([0.004] * blocks))
    return clock


def test_cli_runs_for_the_given_seconds_and_prints_a_summary(vae, monkeypatch, capsys) -> None:
    clock = patch_session(monkeypatch, vae, blocks=160)
    argv = ["live", "--vae_ckpt", "vae.pt", "--block_size", str(BLOCK), "--seconds", "2.5"]
    assert main([*argv, "--input-device", "2", "--output-device", "Speak"]) == 0
    captured = capsys.readouterr()
    assert "live at 16000 Hz, 1 channel(s), blocks of 256 samples (16.0 ms)" in captured.err
    assert "stopping after 2.5 s" in captured.err
    assert clock.waits == [1.0, 1.0, 0.5]  # status every second, then what is left
    played = 62 + 62 + 31  # round(seconds * 16000 / 256) per wait
    assert captured.out.splitlines()[:3] == [
        f"live: 2.5 s, {played} blocks of 256 samples (16.0 ms) through the model",
        "  compute per block: 4.0 ms mean (load 0.25), 4.0 ms worst (load 0.25)",
        "  overruns: 0 (0 input samples dropped); underruns: 0 (0.00 s of silence played)",
    ]
    stream = clock.made[0]
    assert len(stream.outputs) == played
    assert stream.device == (2, "Speak") and stream.stopped and stream.closed


def test_cli_ctrl_c_stops_cleanly_and_prints_the_summary(vae, monkeypatch, capsys) -> None:
    clock = patch_session(monkeypatch, vae, blocks=100)

    def interrupt(seconds: float) -> None:
        clock.made[0].play(2)
        raise KeyboardInterrupt

    monkeypatch.setattr(live_cli, "_wait", interrupt)
    assert main(["live", "--vae_ckpt", "vae.pt", "--block_size", str(BLOCK)]) == 0
    captured = capsys.readouterr()
    assert "Ctrl-C stops" in captured.err
    assert "overruns:" in captured.out and "sound card: 0 input overflows" in captured.out
    assert len(clock.made[0].outputs) == 2
    assert clock.made[0].stopped and clock.made[0].closed
    assert not any(thread.name == "helius-live-model" for thread in threading.enumerate())


def test_cli_needs_a_checkpoint_unless_listing(capsys) -> None:
    assert main(["live"]) == 1
    assert "--vae_ckpt" in capsys.readouterr().err
