"""What ends a training run, in words: printed when `helius train` starts, and once the first
steps have been timed, roughly when that will be."""

from __future__ import annotations

import time
from typing import Any

from helius import progress
from helius.errors import ConfigError

# The first steps include start-up (first batches, allocator warm-up): time the ones after.
ETA_FROM_STEP = 5
ETA_AFTER_STEPS = 20


# With only a time budget the step limit is "never" (the bar counts seconds instead).
UNLIMITED_STEPS = 10**12


def step_limit(train: Any, steps_per_epoch: int) -> int:
    """The step at which training ends, by max_steps or epochs (the earlier of the two)."""
    limits = [train.max_steps] if train.max_steps else []
    if train.epochs:
        limits.append(train.epochs * steps_per_epoch)
    if limits:
        return min(limits)
    if train.max_minutes:
        return UNLIMITED_STEPS
    raise ConfigError(
        "training has no limit: set train.max_steps, train.epochs or train.max_minutes "
        "(e.g. --set train.max_steps=20000)"
    )


def stop_rule(
    train: Any,
    steps_per_epoch: int,
    total_steps: int,
    start_step: int = 0,
    resume_hint: str = "--resume",
) -> str:
    """One sentence naming every limit that can end the run and which config key sets it."""
    limits = []
    if train.max_steps:
        limits.append(f"at step {train.max_steps} (train.max_steps)")
    if train.epochs:
        limits.append(
            f"after {train.epochs} epochs = step {train.epochs * steps_per_epoch} "
            f"(train.epochs; {steps_per_epoch} steps per epoch)"
        )
    if train.max_minutes:
        limits.append(f"after {_duration(train.max_minutes * 60)} (train.max_minutes)")
    if train.early_stopping_patience:
        limits.append(
            f"after {train.early_stopping_patience} validations without improvement "
            "(train.early_stopping_patience)"
        )
    start = f" from step {start_step}" if start_step else ""
    return (
        f"training{start} stops {_either(limits)}; one epoch is {steps_per_epoch} steps; "
        f"Ctrl-C saves and stops (continue with {resume_hint})"
    )


def eta_note(
    step: int, seconds_per_step: float, total_steps: int, budget_seconds_left: float | None
) -> str:
    """Roughly when the run ends, from the measured time per step."""
    if total_steps >= UNLIMITED_STEPS:
        return (
            f"at {seconds_per_step:.2f} s/step the time budget ends training in about "
            f"{_duration(budget_seconds_left or 0)}"
        )
    by_steps = (total_steps - step) * seconds_per_step
    if budget_seconds_left is not None and budget_seconds_left < by_steps:
        return (
            f"at {seconds_per_step:.2f} s/step the time budget ends training in about "
            f"{_duration(budget_seconds_left)}, near step "
            f"{step + int(budget_seconds_left / seconds_per_step)} of {total_steps}"
        )
    return (
        f"at {seconds_per_step:.2f} s/step, step {total_steps} comes in about {_duration(by_steps)}"
    )


class EtaReporter:
    """Notes once, after ETA_AFTER_STEPS timed steps, roughly when training will end."""

    def __init__(self, train: Any, total_steps: int) -> None:
        self.train, self.total_steps = train, total_steps
        self.mark: tuple[int, float] | None = None  # (step, time) the timing starts from
        self.done = False

    def update(self, step: int, started: float) -> None:
        if self.done:
            return
        now = time.perf_counter()
        if self.mark is None:
            if step >= ETA_FROM_STEP:
                self.mark = (step, now)
            return
        if step - self.mark[0] >= ETA_AFTER_STEPS:
            self.done = True
            budget = None
            if self.train.max_minutes:
                budget = self.train.max_minutes * 60 - (now - started)
            per_step = (now - self.mark[1]) / (step - self.mark[0])
            progress.note(eta_note(step, per_step, self.total_steps, budget))


def _either(limits: list[str]) -> str:
    if len(limits) == 1:
        return limits[0]
    return ", ".join(limits[:-1]) + " or " + limits[-1] + ", whichever comes first"


def _duration(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
