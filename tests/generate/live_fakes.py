"""Fakes for the live tests: a sound card the test drives, a clock the test sets, and a wait
for the model's worker thread (tests/generate/test_live*.py)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from helius.config import load_config
from helius.generate.live import LiveSession
from helius.models import build_model

REPO = Path(__file__).resolve().parents[2]
RATE = 16000
BLOCK = 256  # two latent frames of the tiny model
# Only a hung worker thread takes this long: a guard against a test that never ends, not a
# measure of speed.
HANG_SECONDS = 30.0


@functools.cache
def tiny_causal_vae():
    """An untrained tiny causal VAE: streaming is exact whatever the weights."""
    config = load_config(REPO / "configs" / "tiny.yaml", ["model.wave.noise_branch=false"])
    torch.manual_seed(0)
    return build_model(config.model, RATE).eval()


def make_signal(blocks: int, seed: int = 0) -> np.ndarray:
    t = np.arange(blocks * BLOCK) / RATE
    noise = np.random.default_rng(seed).standard_normal(t.size)
    return (0.5 * np.sin(2 * np.pi * 440 * t) + 0.05 * noise)[None].astype(np.float32)


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Wait for the worker thread to reach a state (it has no other way to say so)."""
    deadline = time.monotonic() + HANG_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"the live worker hung: {what} never happened"
        time.sleep(0.001)


class FakeClock:
    """Stands in for the live worker's `time`: block i takes durations[i] seconds.

    The worker reads perf_counter twice per block, before and after the model."""

    def __init__(self, durations: list[float]) -> None:
        self.durations, self.reads, self.now = durations, 0, 0.0

    def perf_counter(self) -> float:
        if self.reads % 2:
            self.now += self.durations[self.reads // 2]
        self.reads += 1
        return self.now


@dataclass
class Flags:
    """Like sounddevice.CallbackFlags: false when nothing is flagged."""

    input_overflow: bool = False
    output_underflow: bool = False

    def __bool__(self) -> bool:
        return self.input_overflow or self.output_underflow


class FakeStream:
    """A sound card that the test drives: `play(count)` makes the next `count` callbacks with
    the next blocks of `signal` as input and records each output block; `after(index)` runs
    after callback `index`. The first callback reports an output underflow, as PortAudio often
    does while priming."""

    def __init__(self, signal, *, samplerate, blocksize, device, channels, dtype, callback):
        assert dtype == "float32" and channels == signal.shape[0]
        self.signal, self.samplerate, self.blocksize = signal, samplerate, blocksize
        self.device, self.callback = device, callback
        self.outputs: list[np.ndarray] = []
        self.started = self.stopped = self.closed = False

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True

    def close(self) -> None:
        self.closed = True

    def play(self, count: int, after: Callable[[int], None] = lambda index: None) -> None:
        assert self.started and not self.stopped
        for _ in range(count):
            index = len(self.outputs)
            start = index * self.blocksize
            indata = np.ascontiguousarray(self.signal[:, start : start + self.blocksize].T)
            assert len(indata) == self.blocksize, "the test played past its signal"
            outdata = np.full_like(indata, np.nan)
            self.callback(indata, outdata, len(indata), None, Flags(output_underflow=not index))
            self.outputs.append(outdata)
            after(index)

    def heard(self) -> np.ndarray:
        return np.concatenate(self.outputs).T


def fake_factory(signal: np.ndarray):
    made: list[FakeStream] = []

    def factory(**stream_options) -> FakeStream:
        made.append(FakeStream(signal, **stream_options))
        return made[-1]

    return factory, made


def caught_up(session: LiveSession, dropped_blocks: int = 0) -> Callable[[int], None]:
    """After callback `index`, wait until the worker has put that callback's block in the output
    ring (`dropped_blocks` earlier blocks never reached the model)."""

    def wait(index: int) -> None:
        wait_until(
            lambda: session.stats().blocks > index - dropped_blocks, f"block {index} processed"
        )

    return wait
