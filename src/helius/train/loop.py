"""The pieces of one training step that `fit` puts together: the accumulation window, the
non-finite skip/recover guard, and moving batches to the device under autocast."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from helius.errors import TrainingError
from helius.train.checkpointing import recover, snapshot
from helius.train.logging import TrainLogger

MAX_RECOVERIES = 3  # reloads with a halved LR before a diverging run stops with an error

_END = object()  # what next() returns once an epoch's micro-batches run out


@dataclass
class Window:
    """One accumulation window whose gradients now sit in the parameters."""

    loss: torch.Tensor  # of the last micro-batch: what the step reports
    logs: dict[str, float]  # the task's numbers for that micro-batch
    batch: Any  # that micro-batch (log_media shows it)
    finite: bool  # every micro-batch's loss was finite


def accumulate_window(
    micro_batches: Iterator[Any],
    size: int,
    backward: Callable[[Any, bool], tuple[torch.Tensor, dict[str, float]]],
) -> Window | None:
    """Run `backward(batch, last)` on the next `size` micro-batches, in order (`last` is True
    on the final one, where DDP averages the gradients), and return the window they made.

    None when the epoch runs out first: the micro-batches of that incomplete window went
    through backward all the same (their randomness is drawn as before), but no optimiser step
    takes their gradients, which are cleared when the next epoch starts.
    """
    finite = True
    for index in range(size):
        batch = next(micro_batches, _END)
        if batch is _END:
            return None
        loss, logs = backward(batch, index == size - 1)
        finite = finite and bool(torch.isfinite(loss.detach()))
    return Window(loss, logs, batch, finite)


class NonFiniteGuard:
    """The non-finite path of the loop: skip a step whose gradients are not finite; after
    `limit` skips in a row, reload the last good weights with half the learning rate (a
    recovery); after MAX_RECOVERIES recoveries, stop with a TrainingError.

    The last good weights are `last_path` when it exists, else the weights `remember` saw.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        last_path: Path,
        limit: int,
        logger: TrainLogger,
        distributed: bool = False,
    ) -> None:
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.last_path, self.limit, self.logger = last_path, limit, logger
        self.distributed = distributed
        self.in_a_row = 0  # skipped steps since the last good one or the last recovery
        self.skipped = 0
        self.recoveries = 0
        self.remember()

    def remember(self) -> None:
        """Take the model's weights as the good state to return to (without last.pt)."""
        self.good_state = snapshot(self.model)

    def admits(self, grad_norm: torch.Tensor, window_finite: bool) -> bool:
        """Whether the window's gradients may be stepped. Under DDP only the gradient norm
        decides: it is the same on every rank after the all-reduce (a NaN on one rank shows
        in all), while a rank's own loss is not, and ranks must skip or step together."""
        healthy = bool(torch.isfinite(grad_norm)) and (window_finite or self.distributed)
        if healthy:
            self.in_a_row = 0
        return healthy

    def skip(self, step: int) -> None:
        """Drop the window's gradients, recovering (or giving up) after `limit` in a row."""
        self.optimizer.zero_grad(set_to_none=True)
        self.skipped += 1
        self.in_a_row += 1
        if self.in_a_row < self.limit:
            return
        if self.recoveries >= MAX_RECOVERIES:
            raise TrainingError(
                f"the loss stayed non-finite at step {step} after {self.recoveries} recoveries "
                f"(each reloaded the last good state and halved the learning rate); "
                f"{self.last_path} holds the last good state. Lower train.learning_rate, "
                "set train.grad_clip, or look for broken audio in the data"
            )
        recover(self.last_path, self.model, self.optimizer, self.scheduler, self.good_state)
        self.recoveries += 1
        self.in_a_row = 0
        self.logger.text(
            "recovery", f"reloaded last good state at step {step}; learning rate halved", step
        )


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA when `enabled` (train.amp); elsewhere full precision."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_device(batch: Any, device: torch.device) -> Any:
    """A batch (a tensor, or lists, tuples and dicts of them) on `device`."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, list | tuple):
        return type(batch)(to_device(item, device) for item in batch)
    if isinstance(batch, dict):
        return {key: to_device(value, device) for key, value in batch.items()}
    return batch
