"""The training loop shared by every Helius model: load, build, loop, validate, log, save.

A *task* (e.g. `helius.train.vae_task.VAETask`) says what is trained: it builds the model and
data sets, computes the loss of a batch and validates. Everything else lives here: devices,
bf16 autocast, DDP, gradient accumulation and clipping, schedules, EMA, checkpoints, resume,
early stopping, non-finite recovery, signals, TensorBoard and the progress bar.

`fit` tells the story of a run; each step of it is one function below, in the order it
happens. The run it steps is set up in `helius.train.run`, the pieces of a step (the
accumulation window, the non-finite guard) are in `helius.train.loop`, and what differs between
DDP ranks is decided by `helius.train.runtime.Runtime`.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from helius import progress
from helius.config import HeliusConfig
from helius.models.checkpoint import rotate
from helius.train.loop import Window, accumulate_window, to_device
from helius.train.run import FitResult, Run, set_up
from helius.train.task import Task, Validation

__all__ = ["VALIDATION_SEED", "FitResult", "fit"]

VALIDATION_SEED = 1234  # validation draws its own randomness, never the training stream's


def fit(
    config: HeliusConfig,
    task: Task,
    resume: bool | str | os.PathLike = False,
    on_validation: Callable[[int, Validation], bool] | None = None,
) -> FitResult:
    """Train `task` as `config.train` says; returns the trained model and what happened.

    `resume` True continues exactly from the task's last.pt; a path, from that checkpoint of
    this run (e.g. an epoch checkpoint).

    `on_validation(step, validation)` is called on rank 0 after every counted validation; when
    it returns True the run stops there (as early stopping does: tuning prunes trials with it).
    """
    run = set_up(config, task, resume, on_validation)
    accumulate = config.train.grad_accum_steps
    with run.stop.installed():
        while _another_epoch(run):
            batches = _start_epoch(run)
            while (window := accumulate_window(batches, accumulate, run.backward)) is not None:
                grad_norm = nn.utils.clip_grad_norm_(
                    run.model.parameters(), run.train.grad_clip or math.inf
                )
                if not run.guard.admits(grad_norm, window.finite):
                    run.guard.skip(run.state.step)  # and recover after too many in a row
                    continue
                _optimiser_step(run, window, grad_norm)
                _log_media_when_due(run, window.batch)
                _validate_when_due(run)
                _check_time(run)
                if _step_ends_run(run):
                    break
            if run.state.batches_in_epoch >= run.batches_per_epoch:
                _end_epoch(run)
    return _finish(run)


# --- the story's steps, in order ----------------------------------------------------------


def _another_epoch(run: Run) -> bool:
    """Whether to start (or go on with) an epoch: no limit reached, no agreed stop."""
    return (
        run.state.step < run.total_steps
        and not run.agree_to_stop()
        and not run.result.stopped_early
        and not run.result.out_of_time
    )


def _start_epoch(run: Run) -> Iterator[Any]:
    """The epoch's micro-batches on the device, after any already trained (on resume)."""
    run.task.set_epoch(run.train_set, run.state.epoch)
    skip = run.state.batches_in_epoch * run.train.batch_size
    run.sampler.set_epoch(run.state.epoch, skip_items=skip)
    # Clears the gradients an incomplete window at the end of the last epoch left behind.
    run.optimizer.zero_grad(set_to_none=True)
    return (to_device(batch, run.runtime.device) for batch in run.loader)


def _optimiser_step(run: Run, window: Window, grad_norm: torch.Tensor) -> None:
    """Step the optimiser, the schedule and the EMA on the window's gradients; report it."""
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    if run.train.lr_schedule != "plateau":  # which steps on validation scores instead
        run.scheduler.step()
    if run.ema:
        run.ema.update(run.model)
    run.state.step += 1
    loss_value = float(window.loss.detach())
    run.result.losses.append(loss_value)
    step, bar = run.state.step, run.bar
    if run.budget_seconds:
        seconds = min(run.budget_seconds, round(time.perf_counter() - run.started))
        bar.update(max(0, seconds - bar.n))
        bar.set_postfix(step=step, loss=f"{loss_value:.4f}", refresh=False)
    else:
        bar.update(1)
        bar.set_postfix(loss=f"{loss_value:.4f}", refresh=False)
    run.logger.scalars({f"train/{k}": v for k, v in window.logs.items()}, step)
    run.logger.scalars(
        {
            "train/loss": loss_value,
            "train/grad_norm": float(grad_norm),
            "train/lr": run.optimizer.param_groups[0]["lr"],
        },
        step,
    )


def _log_media_when_due(run: Run, batch: Any) -> None:
    if run.state.step % run.train.log_audio_every_steps == 0 and run.runtime.is_main:
        with torch.random.fork_rng(devices=[]):
            run.task.log_media(run.logger, _judged(run), batch, run.state.step)


def _validate_when_due(run: Run) -> None:
    """Every train.val_every_steps: validate, and stop early when asked or out of patience."""
    if run.state.step % run.train.val_every_steps != 0:
        return
    run.result.stopped_early = _validate(run, counts=True)
    patience = run.train.early_stopping_patience
    if patience and run.state.bad_validations >= patience:
        run.result.stopped_early = True


def _validate(run: Run, counts: bool) -> bool:
    """Validate on rank 0 (saving best.pt when the score is the best yet); with `counts`,
    every rank learns the score (same LR, same stop). True when the on_validation callback
    asks to stop (on every rank)."""
    state, runtime = run.state, run.runtime
    score, stop_asked = math.inf, False
    if run.val_set is not None and runtime.is_main:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(VALIDATION_SEED)
            batches = _batches(run.val_set, run.train.batch_size, run.task)
            validation = run.task.validate(_judged(run), batches)
        metrics = run.result.last_validation = validation.record()
        message = run.task.validation_warning(validation, state.step)
        if message:
            progress.note(message)
            run.logger.text("warning", message, state.step)
        score = validation.cost  # lower is better from here on
        run.logger.scalars({f"val/{k}": v for k, v in metrics.items() if _is_number(v)}, state.step)
        if score < state.best_score:
            run.save(run.checkpoint_dir / f"{run.task.checkpoint_prefix}best.pt", metrics)
        stop_asked = bool(
            counts and run.on_validation and run.on_validation(state.step, validation)
        )
    if run.val_set is None or not counts:
        state.best_score = min(state.best_score, score)
        return False
    stop_asked = runtime.any_rank(stop_asked)
    score = runtime.main_value(score)
    improved = score < state.best_score
    state.best_score = min(state.best_score, score)
    state.bad_validations = 0 if improved else state.bad_validations + 1
    if run.train.lr_schedule == "plateau":
        run.scheduler.step(score)
    return stop_asked


def _check_time(run: Run) -> None:
    """Note roughly when the run ends (once); mark it out of time past train.max_minutes (by
    rank 0's clock under DDP, so that all ranks stop together)."""
    run.eta.update(run.state.step, run.started)
    if run.train.max_minutes:
        minutes = run.runtime.main_value((time.perf_counter() - run.started) / 60)
        if minutes >= run.train.max_minutes:
            run.result.out_of_time = True


def _step_ends_run(run: Run) -> bool:
    """After a step: a step limit, an agreed stop, early stopping or the time budget."""
    run.agree_to_stop()
    return (
        run.state.step >= run.total_steps
        or run.stopping
        or run.result.stopped_early
        or run.result.out_of_time
    )


def _end_epoch(run: Run) -> None:
    """Count the epoch and save its checkpoint (the task's `epoch_checkpoint`, every
    train.checkpoint_every_epochs epochs, keeping train.keep_last of them) and
    last.pt, whose weights are the good state a non-finite recovery returns to."""
    state = run.state
    state.epoch += 1
    state.batches_in_epoch = 0
    if run.train.validate_every_epoch and run.state.step % run.train.val_every_steps != 0:
        run.result.stopped_early = _validate(run, counts=True) or run.result.stopped_early
    task, metrics = run.task, run.result.last_validation
    if state.epoch % run.train.checkpoint_every_epochs == 0:
        pattern = task.epoch_checkpoint.replace("{name}", task.name)
        run.save(run.checkpoint_dir / pattern.format(epoch=state.epoch), metrics)
        if run.runtime.is_main:
            rotate(run.checkpoint_dir, pattern.format(epoch="*"), run.train.keep_last)
    run.save(run.last_path, metrics)
    run.guard.remember()
    if run.runtime.is_main:
        lr = run.optimizer.param_groups[0]["lr"]
        line = task.end_epoch(run.model, state.epoch, run.total_epochs, metrics, lr)
        if line:
            progress.note(line)


def _finish(run: Run) -> FitResult:
    """A last validation unless one just ran, the final last.pt, and what happened; the
    model returned holds the EMA weights when there is an EMA."""
    state, result = run.state, run.result
    run.bar.close()
    if state.step % run.train.val_every_steps != 0 or not result.last_validation:
        _validate(run, counts=False)
    run.save(run.last_path, result.last_validation)
    run.logger.close()
    # Rank 0 saves last: the other ranks wait for it, so that whatever follows fit on any rank
    # (a resume, a task reading the checkpoint) finds rank 0's files complete.
    run.runtime.any_rank(False)
    result.interrupted = run.stopping or run.stop.requested
    result.step, result.epoch, result.best_score = state.step, state.epoch, state.best_score
    result.skipped_nonfinite, result.recoveries = run.guard.skipped, run.guard.recoveries
    result.elapsed_seconds = time.perf_counter() - run.started
    if run.ema:
        run.model.load_state_dict(run.ema.model.state_dict())
    return result


# --- small helpers --------------------------------------------------------------------------


def _judged(run: Run) -> nn.Module:
    """The model validation and media judge: the EMA weights when there is an EMA."""
    return run.ema.model if run.ema else run.model


def _batches(dataset: Dataset, batch_size: int, task: Task) -> Iterator[Any]:
    yield from DataLoader(dataset, batch_size, shuffle=False, collate_fn=task.collate)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
