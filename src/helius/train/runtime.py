"""Where training runs: device choice, seeding, RNG snapshots, torch.distributed set-up and
the SIGINT/SIGTERM stop flag."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import random
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from helius.errors import ConfigError


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside any DistributedDataParallel and torch.compile wrappers."""
    while True:
        if isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):  # torch.compile's OptimizedModule
            model = model._orig_mod
        else:
            return model


def pick_device(requested: str = "auto") -> torch.device:
    """auto: cuda, then mps, then cpu; otherwise the named device, checked to exist."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise ConfigError(
            f"train.device {requested!r} is not a device (auto, cpu, cuda, mps)"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device {requested!r}: CUDA is not available on this machine")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"train.device {requested!r}: MPS is not available on this machine")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """Every RNG the training loop touches, in a form torch.load(weights_only=True) accepts."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": _numpy_state_to_builtin(np.random.get_state()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_as_tuple(state["python"]))
    name, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _numpy_state_to_builtin(state: tuple) -> list:
    name, keys, position, has_gauss, cached = state
    return [name, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached]


def _as_tuple(value: Any) -> Any:
    return tuple(_as_tuple(item) for item in value) if isinstance(value, list | tuple) else value


@dataclass(frozen=True)
class Runtime:
    """This process's place in a (possibly distributed) run. What differs between ranks is
    decided here: who writes and reports (`is_main`), each rank's random stream
    (`seed_streams`), and how the ranks agree (`any_rank`, `main_value`)."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    # True when start_runtime joined the process group (rather than finding one already set up
    # by the caller), so stop_runtime leaves only a group that this runtime started.
    owns_process_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def seed_streams(self, seed: int, resumed_step: int | None = None) -> None:
        """Give this rank a random stream of its own, once the model was built from the shared
        `seed` (same initial weights on every rank). A resumed run (`resumed_step`) keeps the
        stream last.pt restored on rank 0; that is rank 0's, so the other ranks, which would
        otherwise draw the same noise, start streams of their own from the resume step."""
        if resumed_step is None:
            seed_everything(seed + 7919 * self.rank)
        elif self.rank:
            seed_everything(seed + 7919 * self.rank + 1_000_003 * resumed_step)

    def any_rank(self, flag: bool) -> bool:
        """True on every rank when `flag` is True on any rank; a barrier too."""
        if not self.distributed:
            return flag
        value = torch.tensor([float(flag)], device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value)

    def main_value(self, value: float) -> float:
        """Rank 0's `value` on every rank (its validation score, its clock)."""
        if not self.distributed:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.broadcast(tensor, src=0)
        return float(tensor)


MALLOC_TUNING_ENV = "HELIUS_MALLOC_TUNING"  # "0" leaves the C allocator as it is
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters (malloc.h)


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to reuse freed memory rather than give it back to the kernel.

    A CPU training step allocates and frees activations of a few MB hundreds of times. By
    default glibc returns much of that memory between steps (mmap for large blocks, trimming
    the heap top) and pays a page fault per 4 KB page to get it back: 1.0-1.5 M faults in 15
    steps of the default wave VAE. Serving blocks up to 32 MB from the heap and trimming only
    above 1 GB cut that to 0.35 M and made steps 5-10 % faster, at the same peak RSS. It only
    changes where malloc finds memory, never what a tensor holds. Returns True if applied
    (Linux with glibc, and HELIUS_MALLOC_TUNING is not "0").
    """
    if os.environ.get(MALLOC_TUNING_ENV, "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # absent from musl and other C libraries
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(_M_MMAP_THRESHOLD, 32 << 20)) and bool(mallopt(_M_TRIM_THRESHOLD, 1 << 30))


def start_runtime(requested_device: str = "auto") -> Runtime:
    """Join the torchrun process group when launched by torchrun (WORLD_SIZE > 1)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Runtime(pick_device(requested_device))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(requested_device)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    runtime = Runtime(device, rank, world_size, owns_process_group=not dist.is_initialized())
    if runtime.owns_process_group:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        # Left at exit, not at the end of fit: torch asks for destroy_process_group before
        # exit (NCCL warns otherwise), but ranks finish fit at different moments (rank 0 saves
        # last), and one that re-joined for a second fit in the same process while another
        # was still in the old group would hang. A later fit reuses the group instead.
        atexit.register(stop_runtime, runtime)
    return runtime


def stop_runtime(runtime: Runtime) -> None:
    """Leave the process group that start_runtime joined (NCCL warns at exit otherwise)."""
    if runtime.owns_process_group and dist.is_initialized():
        dist.destroy_process_group()


class StopFlag:
    """SIGINT/SIGTERM ask the loop to save and stop after the current step."""

    def __init__(self) -> None:
        self.requested = False

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        def handler(signum, frame):
            self.requested = True

        try:
            previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        except ValueError:  # not the main thread: leave signals alone
            yield
            return
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)
