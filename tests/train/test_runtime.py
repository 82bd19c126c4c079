"""train.runtime.keep_freed_memory: freed blocks are reused instead of faulted in again."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ALLOCATE = """
import resource, sys
import torch
from helius.train.runtime import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "tuned" else False
torch.ones(1)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for megabytes in range(1, 31):  # blocks of 1..30 MB, each made, filled and freed
    block = torch.ones(megabytes << 18)
    del block
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str, env: dict[str, str] | None = None) -> tuple[bool, int]:
    done = subprocess.run(
        [sys.executable, "-c", ALLOCATE, mode], capture_output=True, text=True, env=env, check=True
    )
    applied, faults = done.stdout.split()
    return applied == "True", int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt is Linux-only")
def test_keeping_freed_memory_saves_page_faults():
    applied, tuned = _faults("tuned")
    _, plain = _faults("plain")
    assert applied
    assert tuned * 3 < plain, (tuned, plain)


def test_the_tuning_can_be_switched_off():
    applied, _ = _faults("tuned", {**os.environ, "HELIUS_MALLOC_TUNING": "0"})
    assert not applied
