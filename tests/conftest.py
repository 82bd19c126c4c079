"""Shared fixtures: progress bars off and one compute thread in every test.

Tiny test models run faster on one thread, and one thread per process keeps the suite from
thrashing when several processes (DDP tests, subprocess scripts) share two cores. The
environment variable reaches the subprocesses that tests start.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
import torch

from helius import progress

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _quiet_progress():
    progress.set_enabled(False)
    yield
    progress.set_enabled(False)
