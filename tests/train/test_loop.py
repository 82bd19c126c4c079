"""The pieces of a training step on their own: the accumulation window and the non-finite
skip/recover guard (fit's use of them is tested end to end in test_trainer.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from helius.errors import TrainingError
from helius.train.logging import TrainLogger
from helius.train.loop import MAX_RECOVERIES, NonFiniteGuard, accumulate_window


def recording_backward(calls: list[tuple[float, bool]], nan_at: frozenset[float] = frozenset()):
    """A backward that records (batch, last) and returns the batch as its loss."""

    def backward(batch: float, last: bool):
        calls.append((batch, last))
        loss = torch.tensor(float("nan") if batch in nan_at else batch)
        return loss, {"batch": batch}

    return backward


def test_a_window_takes_the_next_micro_batches_in_order_and_marks_the_last() -> None:
    calls: list[tuple[float, bool]] = []
    micro_batches = iter([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    first = accumulate_window(micro_batches, 3, recording_backward(calls))
    second = accumulate_window(micro_batches, 3, recording_backward(calls))
    assert calls == [
        (1.0, False),
        (2.0, False),
        (3.0, True),
        (4.0, False),
        (5.0, False),
        (6.0, True),
    ]
    assert first is not None and second is not None
    assert (first.batch, float(first.loss), first.logs) == (3.0, 3.0, {"batch": 3.0})
    assert second.batch == 6.0 and first.finite and second.finite


def test_an_incomplete_window_still_runs_backward_but_yields_no_step() -> None:
    calls: list[tuple[float, bool]] = []
    micro_batches = iter([1.0, 2.0, 3.0])
    assert accumulate_window(micro_batches, 2, recording_backward(calls)) is not None
    # The third micro-batch goes through backward (drawing its randomness) and is dropped.
    assert accumulate_window(micro_batches, 2, recording_backward(calls)) is None
    assert calls == [(1.0, False), (2.0, True), (3.0, False)]


def test_one_non_finite_loss_makes_the_whole_window_non_finite() -> None:
    calls: list[tuple[float, bool]] = []
    window = accumulate_window(iter([1.0, 2.0, 3.0]), 3, recording_backward(calls, {2.0}))
    assert window is not None and not window.finite and float(window.loss) == 3.0


def make_guard(tmp_path, limit: int, distributed: bool = False):
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    guard = NonFiniteGuard(
        model, optimizer, scheduler, tmp_path / "last.pt", limit, TrainLogger(None), distributed
    )
    return guard, model, optimizer


def take_a_step(model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    model(torch.ones(4, 3)).square().mean().backward()
    optimizer.step()
    optimizer.zero_grad()


def test_the_guard_admits_only_finite_gradients_of_a_finite_window(tmp_path) -> None:
    guard, _, _ = make_guard(tmp_path, limit=5)
    assert guard.admits(torch.tensor(1.0), window_finite=True)
    assert not guard.admits(torch.tensor(float("inf")), window_finite=True)
    assert not guard.admits(torch.tensor(1.0), window_finite=False)
    # Under DDP only the all-reduced gradient norm, alike on every rank, decides.
    ddp_guard, _, _ = make_guard(tmp_path, limit=5, distributed=True)
    assert ddp_guard.admits(torch.tensor(1.0), window_finite=False)
    assert not ddp_guard.admits(torch.tensor(float("nan")), window_finite=True)


def test_skips_in_a_row_end_in_a_recovery_to_the_remembered_weights(tmp_path) -> None:
    guard, model, optimizer = make_guard(tmp_path, limit=3)
    take_a_step(model, optimizer)
    guard.remember()
    good = {k: v.clone() for k, v in model.state_dict().items()}
    take_a_step(model, optimizer)  # weights move on after the good state

    model.weight.grad = torch.full_like(model.weight, float("nan"))
    guard.skip(step=2)
    assert model.weight.grad is None  # the window's gradients are dropped
    guard.skip(step=2)
    assert guard.admits(torch.tensor(1.0), window_finite=True)  # a good step resets the count
    guard.skip(step=3)
    guard.skip(step=3)
    assert (guard.skipped, guard.recoveries) == (4, 0)
    assert not torch.equal(model.weight, good["weight"])

    guard.skip(step=3)  # the third in a row
    assert (guard.skipped, guard.recoveries) == (5, 1)
    for name, value in model.state_dict().items():
        assert torch.equal(value, good[name])
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.05)
    assert not any(optimizer.state.values())  # moments built from bad gradients are gone


def test_the_guard_gives_up_after_the_last_recovery(tmp_path) -> None:
    guard, _, optimizer = make_guard(tmp_path, limit=2)
    for _ in range(2 * MAX_RECOVERIES):
        guard.skip(step=7)
    assert guard.recoveries == MAX_RECOVERIES
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**MAX_RECOVERIES)
    guard.skip(step=7)
    with pytest.raises(TrainingError, match=f"non-finite at step 7 after {MAX_RECOVERIES}"):
        guard.skip(step=7)
