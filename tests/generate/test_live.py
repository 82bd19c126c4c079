"""helius live: ring buffers, a live session on a fake sound stream, missing PortAudio, the CLI.

No sound device is touched: `FakeStream` stands in for sounddevice.Stream and calls the
session's callback from its own thread, one block per period, with generated input.
"""

from __future__ import annotations

import builtins
import re
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from helius.cli import live as live_cli
from helius.cli import main
from helius.config import load_config
from helius.errors import MissingToolError
from helius.generate import live
from helius.generate.live import LiveSession, RingBuffer
from helius.generate.stream import StreamProcessor
from helius.models import build_model

REPO = Path(__file__).resolve().parents[2]
RATE = 16000
BLOCK = 256  # two latent frames of the tiny model


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors gain nothing from threads; a busy machine would make each op wait."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def vae():
    """An untrained tiny causal VAE: streaming is exact whatever the weights."""
    config = load_config(REPO / "configs" / "tiny.yaml", ["model.wave.noise_branch=false"])
    torch.manual_seed(0)
    return build_model(config.model, RATE).eval()


def make_signal(blocks: int, seed: int = 0) -> np.ndarray:
    t = np.arange(blocks * BLOCK) / RATE
    noise = np.random.default_rng(seed).standard_normal(t.size)
    return (0.5 * np.sin(2 * np.pi * 440 * t) + 0.05 * noise)[None].astype(np.float32)


@dataclass
class Flags:
    """Like sounddevice.CallbackFlags: false when nothing is flagged."""

    input_overflow: bool = False
    output_underflow: bool = False

    def __bool__(self) -> bool:
        return self.input_overflow or self.output_underflow


class FakeStream:
    """Plays `signal` into the callback one block every `period_seconds` from its own thread,
    records each output block and how long each callback took. The first callback reports an
    output underflow, as PortAudio often does while priming."""

    def __init__(self, signal, period_seconds, *, samplerate, blocksize, device, channels, dtype,
                 callback):  # fmt: skip
        assert dtype == "float32" and channels == signal.shape[0]
        self.signal, self.period_seconds = signal, period_seconds
        self.samplerate, self.blocksize, self.device = samplerate, blocksize, device
        self.callback = callback
        self.outputs: list[np.ndarray] = []
        self.callback_seconds: list[float] = []
        self.done = threading.Event()
        self.stopped = self.closed = False
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.stopped = True
        self._thread.join()

    def close(self) -> None:
        self.closed = True

    def _run(self) -> None:
        for start in range(0, self.signal.shape[1], self.blocksize):
            if self.stopped:
                break
            indata = np.ascontiguousarray(self.signal[:, start : start + self.blocksize].T)
            outdata = np.full_like(indata, np.nan)
            status = Flags(output_underflow=not self.outputs)
            started = time.perf_counter()
            self.callback(indata, outdata, len(indata), None, status)
            self.callback_seconds.append(time.perf_counter() - started)
            self.outputs.append(outdata)
            time.sleep(self.period_seconds)
        self.done.set()

    def heard(self) -> np.ndarray:
        return np.concatenate(self.outputs).T


def fake_factory(signal: np.ndarray, period_seconds: float):
    made: list[FakeStream] = []

    def factory(**stream_options) -> FakeStream:
        made.append(FakeStream(signal, period_seconds, **stream_options))
        return made[-1]

    return factory, made


def run(session: LiveSession, made: list[FakeStream]):
    session.start()
    try:
        assert made[0].done.wait(timeout=4.0), "the fake stream did not finish"
    finally:
        stats = session.stop()
    return stats, made[0]


# ---- the live session ---------------------------------------------------------------------


def test_output_is_the_streamed_output_delayed_by_the_prefill(vae) -> None:
    blocks, prefill = 32, 8 * BLOCK  # a generous head start: 8 fake periods for each block
    signal = make_signal(blocks)
    reference = StreamProcessor(vae)
    expected = np.concatenate(
        [reference.process(signal[:, i : i + BLOCK]) for i in range(0, signal.shape[1], BLOCK)],
        axis=1,
    )
    assert np.abs(expected).max() > 1e-3  # the comparison below is not vacuous
    factory, made = fake_factory(signal, period_seconds=0.02)
    session = LiveSession(
        StreamProcessor(vae), block_size=BLOCK, prefill_samples=prefill, stream_factory=factory
    )
    assert session.latency_samples == BLOCK + prefill + reference.latency_samples

    stats, stream = run(session, made)

    assert (stats.overruns, stats.underruns) == (0, 0), "the worker did not keep up"
    assert stats.callbacks == blocks and stats.blocks >= blocks - prefill // BLOCK
    assert (stats.input_overflows, stats.output_underflows) == (0, 1)  # PortAudio's flags
    assert 0 < stats.mean_compute_seconds <= stats.worst_compute_seconds
    assert stats.worst_load == pytest.approx(stats.worst_compute_seconds * RATE / BLOCK)
    heard = stream.heard()
    np.testing.assert_array_equal(heard[:, :prefill], 0.0)
    np.testing.assert_allclose(heard[:, prefill:], expected[:, :-prefill], atol=1e-6)
    assert stream.device == (None, None) and stream.samplerate == RATE
    assert stream.stopped and stream.closed


class SlowProcessor(StreamProcessor):
    seconds_per_block = 0.5

    def process(self, block: np.ndarray) -> np.ndarray:
        time.sleep(self.seconds_per_block)
        return super().process(block)


def test_a_slow_model_costs_underruns_never_a_blocked_callback(vae) -> None:
    blocks = 40
    factory, made = fake_factory(make_signal(blocks), period_seconds=0.01)
    session = LiveSession(SlowProcessor(vae), block_size=BLOCK, stream_factory=factory)

    stats, stream = run(session, made)

    assert stats.callbacks == blocks
    # The first model output arrives after ~0.5 s, when the fake has played (nearly) all
    # its blocks: every callback after the one-block prefill has to play silence.
    assert stats.underruns >= blocks // 2
    assert stats.missing_samples == stats.underruns * BLOCK
    silent_blocks = sum(not np.any(block) for block in stream.outputs)
    assert silent_blocks >= stats.underruns
    assert stats.overruns >= 1  # the input ring (8 blocks) filled up while the model slept
    assert stats.dropped_samples >= BLOCK
    # The callback only copies: it never waits for the sleeping model.
    assert max(stream.callback_seconds) < SlowProcessor.seconds_per_block / 5
    session.check()  # no error in the worker


class BrokenProcessor(StreamProcessor):
    def process(self, block: np.ndarray) -> np.ndarray:
        raise RuntimeError("the model broke")


def test_a_model_error_reaches_the_main_thread(vae) -> None:
    factory, made = fake_factory(make_signal(4), period_seconds=0.01)
    session = LiveSession(BrokenProcessor(vae), block_size=BLOCK, stream_factory=factory)
    stats, _ = run(session, made)
    assert stats.blocks == 0 and stats.underruns == 3
    with pytest.raises(RuntimeError, match="the model broke"):
        session.check()


# ---- the ring buffer ----------------------------------------------------------------------


def frames(count: int, channels: int = 2, start: int = 0) -> np.ndarray:
    values = np.arange(start * channels, (start + count) * channels, dtype=np.float32)
    return values.reshape(count, channels)


def test_ring_buffer_wraps_around() -> None:
    ring = RingBuffer(capacity=8, channels=2)
    assert ring.write(frames(5)) == 5
    out = np.empty((3, 2), np.float32)
    assert ring.read_into(out) == 3
    np.testing.assert_array_equal(out, frames(3))
    assert ring.write(frames(6, start=5)) == 6  # slots 5, 6, 7, then 0, 1, 2
    out = np.empty((8, 2), np.float32)
    assert ring.read_into(out) == 8
    np.testing.assert_array_equal(out, frames(8, start=3))
    assert ring.available == 0
    assert (ring.overruns, ring.underruns) == (0, 0)


def test_ring_buffer_overrun_keeps_what_fits_and_counts_the_rest() -> None:
    ring = RingBuffer(capacity=4, channels=1)
    assert ring.write(frames(3, 1)) == 3
    assert ring.write(frames(3, 1, start=3)) == 1
    assert (ring.overruns, ring.dropped_samples) == (1, 2)
    out = np.empty((4, 1), np.float32)
    assert ring.read_into(out) == 4
    np.testing.assert_array_equal(out, frames(4, 1))  # unread data was never overwritten


def test_ring_buffer_underrun_pads_with_silence_and_counts() -> None:
    ring = RingBuffer(capacity=8, channels=1)
    ring.write(frames(2, 1, start=1))
    out = np.full((5, 1), np.nan, np.float32)
    assert ring.read_into(out) == 2
    np.testing.assert_array_equal(out[:, 0], [1, 2, 0, 0, 0])
    assert ring.read_into(out) == 0
    np.testing.assert_array_equal(out, 0.0)
    assert (ring.underruns, ring.missing_samples) == (2, 8)


def test_ring_buffer_drop_late_keeps_the_delay_constant() -> None:
    ring = RingBuffer(capacity=8, channels=1, drop_late=True)
    ring.write(frames(2, 1))
    out = np.empty((4, 1), np.float32)
    assert ring.read_into(out) == 2  # samples 2 and 3 were due but missing: silence
    ring.write(frames(5, 1, start=2))
    out = np.empty((3, 1), np.float32)
    assert ring.read_into(out) == 3
    np.testing.assert_array_equal(out[:, 0], [4, 5, 6])  # 2 and 3 came too late: skipped


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


def patch_session(monkeypatch, vae, blocks: int) -> list[FakeStream]:
    monkeypatch.setattr(live, "load_vae", lambda path: (vae, None))
    factory, made = fake_factory(make_signal(blocks), period_seconds=0.01)
    monkeypatch.setattr(live, "open_sound_stream", factory)
    return made


def test_cli_runs_for_the_given_seconds_and_prints_a_summary(vae, monkeypatch, capsys) -> None:
    made = patch_session(monkeypatch, vae, blocks=100)
    argv = ["live", "--vae_ckpt", "vae.pt", "--block_size", str(BLOCK), "--seconds", "0.3"]
    assert main([*argv, "--input-device", "2", "--output-device", "Speak"]) == 0
    captured = capsys.readouterr()
    assert "live at 16000 Hz, 1 channel(s), blocks of 256 samples (16.0 ms)" in captured.err
    assert "stopping after 0.3 s" in captured.err
    assert re.match(r"live: \d+\.\d s, \d+ blocks of 256 samples", captured.out)
    assert "underruns:" in captured.out
    stream = made[0]
    assert stream.device == (2, "Speak") and stream.stopped and stream.closed
    assert 0 < len(stream.outputs) < 100  # stopped by --seconds, not by running out of input


def test_cli_ctrl_c_stops_cleanly_and_prints_the_summary(vae, monkeypatch, capsys) -> None:
    made = patch_session(monkeypatch, vae, blocks=100)

    def interrupt(seconds: float) -> None:
        time.sleep(0.05)
        raise KeyboardInterrupt

    monkeypatch.setattr(live_cli, "_wait", interrupt)
    assert main(["live", "--vae_ckpt", "vae.pt", "--block_size", str(BLOCK)]) == 0
    captured = capsys.readouterr()
    assert "Ctrl-C stops" in captured.err
    assert "overruns:" in captured.out and "sound card:" in captured.out
    assert made[0].stopped and made[0].closed
    assert not any(thread.name == "helius-live-model" for thread in threading.enumerate())


def test_cli_needs_a_checkpoint_unless_listing(capsys) -> None:
    assert main(["live"]) == 1
    assert "--vae_ckpt" in capsys.readouterr().err
