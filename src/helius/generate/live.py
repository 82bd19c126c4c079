"""Live transformation: microphone -> streaming VAE -> speakers, through sounddevice (PortAudio).

    sound card callback --input ring--> worker thread (StreamProcessor) --output ring--> callback

The callback only copies this block's input into the input ring and the next output block out
of the output ring (silence for whatever is missing): no model, no lock, no waiting, so a slow
block costs an underrun, not a stalled sound card. The worker pulls whole blocks from the input
ring, runs `StreamProcessor.process` and pushes the result. The output ring starts with
`prefill_samples` of silence: the worker's head start.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from helius.errors import AudioError, ConfigError, MissingToolError
from helius.generate.stream import LatentTransform, StreamProcessor
from helius.models.checkpoint import check_pair, load_prior, load_vae

INSTALL_HINT = (
    "live audio needs the sounddevice package and the PortAudio library: `pip install "
    "sounddevice` and `sudo apt-get install libportaudio2` (macOS: `brew install portaudio`)"
)


class RingBuffer:
    """Fixed-capacity (capacity, channels) float32 FIFO for one writer and one reader thread.

    Lock-free: each side advances its own counter only after copying, so neither waits. A
    write that does not fit keeps what fits and counts an overrun; a read that finds too little
    pads with silence and counts an underrun. With `drop_late`, samples replaced by silence are
    skipped when they arrive, so the delay through the buffer stays constant."""

    def __init__(self, capacity: int, channels: int, drop_late: bool = False) -> None:
        self.capacity = capacity
        self.drop_late = drop_late
        self._data = np.zeros((capacity, channels), np.float32)
        self._written = 0  # samples ever written (only the writer changes it)
        self._read = 0  # samples ever read or skipped (only the reader changes it)
        self._late = 0  # samples owed to silence, to skip on arrival (drop_late)
        self.overruns = self.dropped_samples = 0  # writer side
        self.underruns = self.missing_samples = 0  # reader side

    @property
    def available(self) -> int:
        return self._written - self._read

    def write(self, frames: np.ndarray) -> int:
        """Append (n, channels) samples; returns how many fitted (the rest are dropped)."""
        count = min(len(frames), self.capacity - (self._written - self._read))
        if count < len(frames):
            self.overruns += 1
            self.dropped_samples += len(frames) - count
        start = self._written % self.capacity
        first = min(count, self.capacity - start)
        self._data[start : start + first] = frames[:first]
        self._data[: count - first] = frames[first:count]
        self._written += count
        return count

    def read_into(self, out: np.ndarray) -> int:
        """Fill (n, channels) `out` with the oldest samples, silence where there are too few;
        returns how many real samples it got."""
        available = self._written - self._read
        if self._late and available:
            skipped = min(self._late, available)
            self._late -= skipped
            self._read += skipped
            available -= skipped
        count = min(len(out), available)
        start = self._read % self.capacity
        first = min(count, self.capacity - start)
        out[:first] = self._data[start : start + first]
        out[first:count] = self._data[: count - first]
        out[count:] = 0.0
        self._read += count
        if count < len(out):
            self.underruns += 1
            self.missing_samples += len(out) - count
            if self.drop_late:
                self._late += len(out) - count
        return count

    def forgive(self, samples: int) -> None:
        """Reader side: `samples` owed to silence will never arrive (their input was dropped),
        so stop waiting to skip them; else every new sample would be skipped in their place."""
        self._late = max(0, self._late - samples)


@dataclass
class LiveStats:
    """A live session's counters (`LiveSession.stats()` returns a snapshot)."""

    sample_rate: int
    block_size: int
    callbacks: int = 0  # sound card callbacks so far
    blocks: int = 0  # blocks the model has processed
    overruns: int = 0  # times input was dropped because the model had fallen behind
    dropped_samples: int = 0
    underruns: int = 0  # callbacks that found too little output and played silence instead
    missing_samples: int = 0
    input_overflows: int = 0  # PortAudio's status flags: the sound card itself lost input
    output_underflows: int = 0  # ... or had nothing to play
    compute_seconds: float = 0.0  # in the model, all blocks
    worst_compute_seconds: float = 0.0

    @property
    def mean_compute_seconds(self) -> float:
        return self.compute_seconds / self.blocks if self.blocks else 0.0

    @property
    def mean_load(self) -> float:
        """Mean compute time per block over the block's duration: above 1 cannot keep up."""
        return self.mean_compute_seconds * self.sample_rate / self.block_size

    @property
    def worst_load(self) -> float:
        return self.worst_compute_seconds * self.sample_rate / self.block_size


class LiveSession:
    """Run `processor` on a duplex sound stream: `start()`, then `stop()`. `stream_factory` is
    called like `sounddevice.Stream(samplerate=, blocksize=, device=, channels=, dtype=,
    callback=)` and returns an object with start/stop/close (tests pass a fake)."""

    def __init__(
        self,
        processor: StreamProcessor,
        block_size: int = 2048,
        input_device: int | str | None = None,
        output_device: int | str | None = None,
        prefill_samples: int | None = None,
        buffer_blocks: int = 8,
        stream_factory: Callable[..., Any] | None = None,
    ) -> None:
        if block_size < 1:
            raise ConfigError(f"--block_size must be at least 1 sample, got {block_size}")
        self.processor = processor
        self.sample_rate = int(processor.vae.sample_rate)
        self.channels = processor.channels
        self.block_size = block_size
        self.devices = (input_device, output_device)
        self.prefill_samples = block_size if prefill_samples is None else max(0, prefill_samples)
        self.buffer_blocks = max(2, buffer_blocks)
        self._stream_factory = stream_factory or open_sound_stream
        self._stream: Any = None
        self._worker: threading.Thread | None = None
        self._stopping = threading.Event()
        self.error: BaseException | None = None  # the worker's, raised by check()
        self._reset_counters()

    @property
    def latency_samples(self) -> int:
        """Input to output before the sound card's buffers: block, head start, model lag."""
        return self.block_size + self.prefill_samples + self.processor.latency_samples

    def _reset_counters(self) -> None:
        capacity = self.buffer_blocks * self.block_size
        self._input = RingBuffer(capacity, self.channels)
        self._output = RingBuffer(capacity + self.prefill_samples, self.channels, drop_late=True)
        self._counts = LiveStats(self.sample_rate, self.block_size)  # each field has one writer

    def start(self) -> LiveSession:
        if self._worker is not None:
            raise RuntimeError("this live session is already running")
        self.processor.reset()
        self._reset_counters()
        self._output.write(np.zeros((self.prefill_samples, self.channels), np.float32))
        self.error = None
        self._stopping.clear()
        self._worker = threading.Thread(target=self._work, name="helius-live-model", daemon=True)
        self._worker.start()
        try:
            self._stream = self._stream_factory(
                samplerate=self.sample_rate,
                blocksize=self.block_size,
                device=self.devices,
                channels=self.channels,
                dtype="float32",
                callback=self._callback,
            )
            self._stream.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> LiveStats:
        """Stop the sound stream, then the worker; returns the stats."""
        self._stopping.set()
        stream, self._stream = self._stream, None
        worker, self._worker = self._worker, None
        if stream is not None:
            stream.stop()
            stream.close()
        if worker is not None:  # it sees _stopping after its current block
            worker.join()
        return self.stats()

    def check(self) -> None:  # in the main thread: re-raise the worker's error
        if self.error is not None:
            raise self.error

    def stats(self) -> LiveStats:
        return replace(
            self._counts,
            overruns=self._input.overruns + self._output.overruns,
            dropped_samples=self._input.dropped_samples + self._output.dropped_samples,
            underruns=self._output.underruns,
            missing_samples=self._output.missing_samples,
        )

    def _callback(self, indata, outdata, frames, time_info, status) -> None:
        """Runs on the sound card's thread: copy in, copy out, nothing else."""
        if status:
            self._counts.input_overflows += bool(getattr(status, "input_overflow", False))
            self._counts.output_underflows += bool(getattr(status, "output_underflow", False))
        dropped = len(indata) - self._input.write(indata)
        if dropped:  # the model never sees this input, so its output never comes
            self._output.forgive(dropped)
        self._output.read_into(outdata)
        self._counts.callbacks += 1

    def _work(self) -> None:
        # OpenMP keeps its thread count per OS thread: this new thread would start from its
        # default (OMP_NUM_THREADS, else one per core) whatever torch.set_num_threads
        # (--threads) said, and a busy machine then makes each block 5-100x slower.
        torch.set_num_threads(torch.get_num_threads())
        block = np.zeros((self.block_size, self.channels), np.float32)
        poll_seconds = min(0.005, self.block_size / self.sample_rate / 4)
        try:
            while not self._stopping.is_set():
                if self._input.available < self.block_size:
                    self._stopping.wait(poll_seconds)
                    continue
                self._input.read_into(block)
                started = time.perf_counter()
                out = self.processor.process(block.T)
                elapsed = time.perf_counter() - started
                self._output.write(out.T)
                self._counts.blocks += 1
                self._counts.compute_seconds += elapsed
                self._counts.worst_compute_seconds = max(
                    self._counts.worst_compute_seconds, elapsed
                )
        except BaseException as error:
            self.error = error


def open_session(
    vae_checkpoint: str | os.PathLike,
    prior_checkpoint: str | os.PathLike | None = None,
    transform: LatentTransform | None = None,
    precision: str = "float32",
    **session_options: Any,
) -> LiveSession:
    """Load the models and build a (not yet started) live session around them."""
    vae, vae_config = load_vae(vae_checkpoint)
    prior = None
    if prior_checkpoint is not None:
        prior, prior_config = load_prior(prior_checkpoint)
        check_pair(vae_config, prior_config, prior_checkpoint)
    return LiveSession(StreamProcessor(vae, transform, prior, precision), **session_options)


def open_sound_stream(**stream_options: Any) -> Any:
    """A sounddevice duplex Stream; device problems become an AudioError that says what to do."""
    sd = _sounddevice()
    try:
        return sd.Stream(**stream_options)
    except (ValueError, sd.PortAudioError) as error:
        raise AudioError(
            f"cannot open the sound devices (input, output) {stream_options.get('device')} at "
            f"{stream_options.get('samplerate')} Hz: {error}; see `helius live --list-devices`"
        ) from None


def list_devices() -> list[dict[str, Any]]:
    """sounddevice's device dicts (name, max_input_channels, max_output_channels,
    default_samplerate, ...) plus index, host_api (a name), default_input, default_output."""
    sd = _sounddevice()
    host_apis = [api["name"] for api in sd.query_hostapis()]
    default_input, default_output = (-1 if d is None else int(d) for d in sd.default.device)
    return [
        dict(
            info,
            index=index,
            host_api=host_apis[info["hostapi"]] if 0 <= info["hostapi"] < len(host_apis) else "?",
            default_input=index == default_input,
            default_output=index == default_output,
        )
        for index, info in enumerate(sd.query_devices())
    ]


def _sounddevice():
    """Imported only when a real sound card is wanted: tests need no PortAudio."""
    try:
        import sounddevice
    except ImportError:
        raise MissingToolError(f"sounddevice is not installed; {INSTALL_HINT}") from None
    except OSError as error:  # sounddevice raises "PortAudio library not found" on import
        raise MissingToolError(f"{error}; {INSTALL_HINT}") from None
    return sounddevice
