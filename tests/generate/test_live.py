"""helius live: the session on a fake sound card, and its ring buffers.

No sound device is touched and nothing depends on how fast this machine is: `FakeStream`
stands in for sounddevice.Stream, and the test itself makes each sound card callback, waiting
for the model's worker thread where a test needs it to have caught up, or holding the model
stalled where it needs it behind. The worker's clock is a `FakeClock`, so compute times and
loads are known exactly. How fast the real thing runs is measured by bench/live.py.
"""

from __future__ import annotations

import ctypes
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from live_fakes import (
    BLOCK,
    HANG_SECONDS,
    RATE,
    FakeClock,
    caught_up,
    fake_factory,
    make_signal,
    tiny_causal_vae,
    wait_until,
)

from helius.generate import live
from helius.generate.live import LiveSession, RingBuffer
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


# ---- the live session ---------------------------------------------------------------------


def test_output_is_the_streamed_output_delayed_by_the_prefill(vae, monkeypatch) -> None:
    blocks, prefill = 32, 2 * BLOCK
    signal = make_signal(blocks)
    reference = StreamProcessor(vae)
    expected = np.concatenate(
        [reference.process(signal[:, i : i + BLOCK]) for i in range(0, signal.shape[1], BLOCK)],
        axis=1,
    )
    assert np.abs(expected).max() > 1e-3  # the comparison below is not vacuous
    durations = [0.001 * (1 + index % 5) for index in range(blocks)]  # 1 to 5 ms per block
    monkeypatch.setattr(live, "time", FakeClock(durations))
    factory, made = fake_factory(signal)
    session = LiveSession(
        StreamProcessor(vae), block_size=BLOCK, prefill_samples=prefill, stream_factory=factory
    )
    assert session.latency_samples == BLOCK + prefill + reference.latency_samples

    session.start()
    stream = made[0]
    stream.play(blocks, after=caught_up(session))  # a model that always keeps up
    stats = session.stop()

    assert (stats.overruns, stats.underruns) == (0, 0)
    assert (stats.callbacks, stats.blocks) == (blocks, blocks)
    assert (stats.input_overflows, stats.output_underflows) == (0, 1)  # PortAudio's flags
    mean_seconds = sum(durations) / blocks  # 93 ms over 32 blocks
    assert stats.compute_seconds == pytest.approx(sum(durations))
    assert stats.mean_compute_seconds == pytest.approx(mean_seconds)
    assert stats.worst_compute_seconds == pytest.approx(0.005)
    assert stats.worst_load == pytest.approx(0.005 / 0.016)  # 5 ms of a 16 ms block
    assert stats.mean_load == pytest.approx(mean_seconds / 0.016)
    heard = stream.heard()
    np.testing.assert_array_equal(heard[:, :prefill], 0.0)
    np.testing.assert_allclose(heard[:, prefill:], expected[:, :-prefill], atol=1e-6)
    assert stream.device == (None, None) and stream.samplerate == RATE
    assert stream.stopped and stream.closed


class StalledProcessor(StreamProcessor):
    """A model stuck in its first block until the test opens `gate`."""

    def __init__(self, vae) -> None:
        super().__init__(vae)
        self.entered, self.gate, self.returned = (threading.Event() for _ in range(3))

    def process(self, block: np.ndarray) -> np.ndarray:
        self.entered.set()
        if not self.gate.wait(timeout=HANG_SECONDS):
            self.gate.set()  # stalled once, long enough: later blocks run at once
        self.returned.set()
        return super().process(block)


def test_a_stalled_model_costs_underruns_never_a_blocked_callback(vae) -> None:
    blocks, capacity_blocks = 40, 8
    factory, made = fake_factory(make_signal(blocks))
    processor = StalledProcessor(vae)
    session = LiveSession(
        processor, block_size=BLOCK, buffer_blocks=capacity_blocks, stream_factory=factory
    )
    session.start()
    stream = made[0]
    try:
        stream.play(1)
        wait_until(processor.entered.is_set, "the worker took block 0")
        stream.play(blocks - 1)
        # Every callback returned while the model was stuck in block 0: had one waited for
        # the model, it would have waited until the gate's timeout let the model return.
        assert not processor.returned.is_set()
        stats = session.stats()
    finally:
        processor.gate.set()
        session.stop()
    assert (stats.callbacks, stats.blocks) == (blocks, 0)
    # Block 0 went to the model; the input ring holds blocks 1 to 8; 9 to 39 are dropped.
    assert stats.overruns == blocks - 1 - capacity_blocks
    assert stats.dropped_samples == (blocks - 1 - capacity_blocks) * BLOCK
    # The first callback plays the one-block prefill; every later one finds nothing.
    assert (stats.underruns, stats.missing_samples) == (blocks - 1, (blocks - 1) * BLOCK)
    np.testing.assert_array_equal(stream.heard(), 0.0)  # silence, never stale data or NaN
    session.check()  # no error in the worker


def test_after_a_stall_that_dropped_input_the_sound_comes_back(vae) -> None:
    """Input dropped while the model stalled never comes out: the output ring must not wait
    to skip its output, or every later callback skips the new output and plays silence."""
    stalled, capacity_blocks, after = 40, 8, 16
    dropped = stalled - 1 - capacity_blocks
    factory, made = fake_factory(make_signal(stalled + after))
    processor = StalledProcessor(vae)
    session = LiveSession(
        processor, block_size=BLOCK, buffer_blocks=capacity_blocks, stream_factory=factory
    )
    session.start()
    stream = made[0]
    try:
        stream.play(1)
        wait_until(processor.entered.is_set, "the worker took block 0")
        stream.play(stalled - 1)
    finally:
        processor.gate.set()
    wait_until(lambda: session.stats().blocks == 1 + capacity_blocks, "the backlog processed")
    stalled_underruns = session.stats().underruns
    stream.play(after, after=caught_up(session, dropped_blocks=dropped))
    stats = session.stop()
    assert stats.overruns == dropped and stalled_underruns == stalled - 1
    assert stats.underruns == stalled_underruns  # not one callback silent since the stall
    assert all(np.abs(block).max() > 1e-3 for block in stream.outputs[stalled:])


# The OpenMP runtime that torch's Linux wheels bundle: it shows a thread's own thread count.
LIBGOMP = sorted((Path(torch.__file__).parent / "lib").glob("libgomp*.so*"))


def omp_max_threads() -> int:
    return ctypes.CDLL(str(LIBGOMP[0])).omp_get_max_threads()


class ThreadCountingProcessor(StreamProcessor):
    def process(self, block: np.ndarray) -> np.ndarray:
        self.omp_threads = omp_max_threads()  # on the worker thread
        return super().process(block)


@pytest.mark.skipif(not LIBGOMP, reason="needs the OpenMP runtime bundled with torch")
def test_the_model_runs_on_as_many_threads_as_torch_was_given(vae) -> None:
    """OpenMP keeps its thread count per OS thread: the worker must take torch's setting
    (--threads), not a new thread's default (OMP_NUM_THREADS, or one per core)."""
    fresh: list[int] = []
    probe = threading.Thread(target=lambda: fresh.append(omp_max_threads()))
    probe.start()
    probe.join()
    torch.set_num_threads(fresh[0] + 1)  # unlike a new thread; _one_thread restores it
    factory, made = fake_factory(make_signal(1))
    processor = ThreadCountingProcessor(vae)
    session = LiveSession(processor, block_size=BLOCK, stream_factory=factory)
    session.start()
    made[0].play(1, after=caught_up(session))
    session.stop()
    assert processor.omp_threads == fresh[0] + 1


class BrokenProcessor(StreamProcessor):
    def process(self, block: np.ndarray) -> np.ndarray:
        raise RuntimeError("the model broke")


def test_a_model_error_reaches_the_main_thread(vae) -> None:
    factory, made = fake_factory(make_signal(4))
    session = LiveSession(BrokenProcessor(vae), block_size=BLOCK, stream_factory=factory)
    session.start()
    made[0].play(1, after=lambda _: wait_until(lambda: session.error is not None, "the error"))
    made[0].play(3)
    stats = session.stop()
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


def test_ring_buffer_stops_waiting_for_forgiven_samples() -> None:
    ring = RingBuffer(capacity=8, channels=1, drop_late=True)
    out = np.empty((4, 1), np.float32)
    assert ring.read_into(out) == 0  # 4 samples owed to silence
    ring.forgive(3)  # 3 of them will never come
    ring.write(frames(5, 1))
    assert ring.read_into(out) == 4
    np.testing.assert_array_equal(out[:, 0], [1, 2, 3, 4])  # only sample 0 was late
