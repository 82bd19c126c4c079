"""Shared fixtures: progress bars off in every test."""

from __future__ import annotations

import pytest

from helius import progress


@pytest.fixture(autouse=True)
def _quiet_progress():
    progress.set_enabled(False)
    yield
    progress.set_enabled(False)
