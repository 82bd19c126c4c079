"""The training loop shared by every Helius model: load, build, loop, validate, log, save.

A *task* (e.g. `helius.train.vae_task.VAETask`) says what is trained: it builds the model and
data sets, computes the loss of a batch and validates. Everything else lives here: devices,
bf16 autocast, DDP, gradient accumulation and clipping, schedules, EMA, checkpoints, resume,
early stopping, non-finite recovery, signals, TensorBoard and the progress bar.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from helius import progress
from helius.config import HeliusConfig
from helius.data.dataset import EpochSampler
from helius.errors import DataError, TrainingError
from helius.models.checkpoint import rotate
from helius.train.checkpointing import recover, restore, save, snapshot
from helius.train.logging import TrainLogger
from helius.train.optim import EMA, build_optimizer, build_scheduler
from helius.train.runtime import (
    Runtime,
    StopFlag,
    keep_freed_memory,
    seed_everything,
    start_runtime,
)
from helius.train.stopping import EtaReporter, step_limit, stop_rule
from helius.train.task import Task, Validation

VALIDATION_SEED = 1234  # validation draws its own randomness, never the training stream's
MAX_RECOVERIES = 3  # reloads with a halved LR before a diverging run stops with an error


@dataclass
class FitResult:
    model: nn.Module
    step: int = 0
    epoch: int = 0
    losses: list[float] = field(default_factory=list)  # per optimiser step, this run
    best_score: float = math.inf
    last_validation: dict[str, Any] = field(default_factory=dict)
    skipped_nonfinite: int = 0
    recoveries: int = 0
    stopped_early: bool = False  # by early stopping or by the on_validation callback
    out_of_time: bool = False  # stopped by train.max_minutes
    interrupted: bool = False
    audio_seconds: float = 0.0
    elapsed_seconds: float = 0.0
    checkpoint_dir: Path | None = None
    last_path: Path | None = None


@dataclass
class _State:
    step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0
    best_score: float = math.inf
    bad_validations: int = 0


def fit(
    config: HeliusConfig,
    task: Task,
    resume: bool = False,
    on_validation: Callable[[int, Validation], bool] | None = None,
) -> FitResult:
    """Train `task` as `config.train` says; returns the trained model and what happened.

    `on_validation(step, validation)` is called on rank 0 after every counted validation; when
    it returns True the run stops there (as early stopping does: tuning prunes trials with it).
    """
    train_config = config.train
    runtime = start_runtime(train_config.device)
    if runtime.device.type == "cpu":
        keep_freed_memory()
    seed_everything(train_config.seed)  # same initial weights on every rank
    model = task.build_model().to(runtime.device)
    train_set, val_set = task.datasets()
    checkpoint_dir = Path(train_config.checkpoint_dir)
    # Tasks sharing a folder keep their own last/best files (prior_last.pt beside last.pt).
    prefix = task.checkpoint_prefix
    last_path = checkpoint_dir / f"{prefix}last.pt"
    # The sampler pads every rank to ceil(size / world_size) items; the loader drops the rest.
    batches_per_epoch = -(-len(train_set) // runtime.world_size) // train_config.batch_size
    if batches_per_epoch == 0:
        raise DataError(
            f"{len(train_set)} training items are fewer than one batch of "
            f"{train_config.batch_size} x {runtime.world_size} process(es); lower "
            "train.batch_size or prepare more data"
        )
    steps_per_epoch = max(1, batches_per_epoch // train_config.grad_accum_steps)
    total_steps = step_limit(train_config, steps_per_epoch)

    optimizer = build_optimizer(
        task.parameter_groups(model, train_config.weight_decay), train_config
    )
    scheduler = build_scheduler(optimizer, train_config, total_steps)
    ema = EMA(model, train_config.ema_decay) if train_config.ema_decay else None
    state = _State()
    if resume:
        restore(last_path, task, model, optimizer, scheduler, ema, state)
        if runtime.rank:
            # last.pt holds rank 0's RNG state: restored as is, every rank would draw the same
            # noise from here on. The other ranks start streams of their own instead.
            seed_everything(train_config.seed + 7919 * runtime.rank + 1_000_003 * state.step)
    else:
        # Ranks draw different noise; model init above used the shared seed.
        seed_everything(train_config.seed + 7919 * runtime.rank)
    good_state = snapshot(model)

    trained = model
    if train_config.compile:
        trained = torch.compile(trained)
    if runtime.distributed:
        trained = nn.parallel.DistributedDataParallel(
            trained,
            device_ids=[runtime.device.index] if runtime.device.type == "cuda" else None,
            find_unused_parameters=task.ddp_find_unused_parameters,
        )
    sampler = EpochSampler(
        len(train_set), train_config.seed, True, runtime.rank, runtime.world_size
    )
    loader = DataLoader(
        train_set,
        train_config.batch_size,
        sampler=sampler,
        drop_last=True,
        num_workers=train_config.num_workers,
        collate_fn=task.collate,
        # Its own generator: a new loader iterator would otherwise draw from the global RNG,
        # so a resumed run (new iterator mid-epoch) would drift from an uninterrupted one.
        generator=torch.Generator().manual_seed(train_config.seed),
    )
    logger = TrainLogger(Path(train_config.log_dir), enabled=runtime.is_main)
    result = FitResult(model, checkpoint_dir=checkpoint_dir, last_path=last_path)
    autocast = _autocast(runtime.device, train_config.amp)
    stop = StopFlag()
    # With a time budget the bar counts seconds, so its ETA is the budget's, not the epochs'.
    budget_seconds = round(train_config.max_minutes * 60) if train_config.max_minutes else None
    bar = progress.bar(
        total=budget_seconds or total_steps,
        initial=0 if budget_seconds else state.step,
        desc=f"train {task.name}",
        unit="s" if budget_seconds else "step",
        disable=not runtime.is_main,
    )

    def save_state(path: Path, metrics: dict[str, Any]) -> None:
        save(path, config, task, model, optimizer, scheduler, ema, state, metrics)

    if runtime.is_main:
        progress.note(stop_rule(train_config, steps_per_epoch, total_steps, state.step))
    eta = EtaReporter(train_config, total_steps)
    started = time.perf_counter()
    consecutive_bad = 0
    # stop.requested as every rank agreed on it (see _any_rank). A signal reaches each rank at
    # its own moment; the loop must only ever look at this agreed value.
    stopping = False

    def validate(counts: bool) -> bool:
        """Validate on rank 0; with `counts`, every rank learns the score (same LR, same stop).
        True when the on_validation callback asks to stop (on every rank)."""
        score, stop_asked = math.inf, False
        if val_set is not None and runtime.is_main:
            judged = ema.model if ema else model
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(VALIDATION_SEED)
                batches = _batches(val_set, train_config.batch_size, task)
                validation = task.validate(judged, batches)
            metrics = result.last_validation = validation.record()
            message = task.validation_warning(validation, state.step)
            if message:
                progress.note(message)
                logger.text("warning", message, state.step)
            score = validation.cost  # lower is better from here on
            logger.scalars({f"val/{k}": v for k, v in metrics.items() if _is_number(v)}, state.step)
            if score < state.best_score:
                save_state(checkpoint_dir / f"{prefix}best.pt", metrics)
            stop_asked = bool(counts and on_validation and on_validation(state.step, validation))
        if val_set is None or not counts:
            state.best_score = min(state.best_score, score)
            return False
        stop_asked = _any_rank(stop_asked, runtime)
        score = _broadcast_score(score, runtime)
        improved = score < state.best_score
        state.best_score = min(state.best_score, score)
        state.bad_validations = 0 if improved else state.bad_validations + 1
        if train_config.lr_schedule == "plateau":
            scheduler.step(score)
        return stop_asked

    with stop.installed():
        while (
            state.step < total_steps
            and not (stopping := _any_rank(stop.requested, runtime))
            and not result.stopped_early
            and not result.out_of_time
        ):
            task.set_epoch(train_set, state.epoch)
            skip = state.batches_in_epoch * train_config.batch_size
            sampler.set_epoch(state.epoch, skip_items=skip)
            micro, window_finite = 0, True
            # Micro-batches left over from an incomplete accumulation window are dropped.
            optimizer.zero_grad(set_to_none=True)
            for batch in loader:
                batch = _to_device(batch, runtime.device)
                micro += 1
                final_micro = micro % train_config.grad_accum_steps == 0
                # DDP averages gradients only on the last micro-batch of a window.
                sync = (
                    trained.no_sync()
                    if runtime.distributed and not final_micro
                    else (contextlib.nullcontext())
                )
                with sync:
                    with autocast:
                        loss, logs = task.loss(trained, batch, state.step)
                    # Always backward, even on NaN: under DDP every rank must join the
                    # all-reduce, and the NaN then shows in every rank's gradient norm alike.
                    (loss / train_config.grad_accum_steps).backward()
                window_finite = window_finite and bool(torch.isfinite(loss.detach()))
                state.batches_in_epoch += 1
                result.audio_seconds += task.batch_seconds(batch) * runtime.world_size
                if not final_micro:
                    continue
                grad_norm = torch.nn.utils.clip_grad_norm_(
                    model.parameters(), train_config.grad_clip or math.inf
                )
                healthy = bool(torch.isfinite(grad_norm)) and (window_finite or runtime.distributed)
                window_finite = True
                if not healthy:
                    optimizer.zero_grad(set_to_none=True)
                    result.skipped_nonfinite += 1
                    consecutive_bad += 1
                    if consecutive_bad >= train_config.max_nonfinite_steps:
                        if result.recoveries >= MAX_RECOVERIES:
                            _give_up(last_path, state.step, result)
                        recover(last_path, model, optimizer, scheduler, good_state)
                        result.recoveries += 1
                        consecutive_bad = 0
                        logger.text(
                            "recovery",
                            f"reloaded last good state at step {state.step}; learning rate halved",
                            state.step,
                        )
                    continue
                consecutive_bad = 0
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                if train_config.lr_schedule != "plateau":
                    scheduler.step()
                if ema:
                    ema.update(model)
                state.step += 1
                loss_value = float(loss.detach())
                result.losses.append(loss_value)
                if budget_seconds:
                    seconds = min(budget_seconds, round(time.perf_counter() - started))
                    bar.update(max(0, seconds - bar.n))
                    bar.set_postfix(step=state.step, loss=f"{loss_value:.4f}", refresh=False)
                else:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss_value:.4f}", refresh=False)
                logger.scalars({f"train/{k}": v for k, v in logs.items()}, state.step)
                logger.scalars(
                    {
                        "train/loss": loss_value,
                        "train/grad_norm": float(grad_norm),
                        "train/lr": optimizer.param_groups[0]["lr"],
                    },
                    state.step,
                )
                if state.step % train_config.log_audio_every_steps == 0 and runtime.is_main:
                    with torch.random.fork_rng(devices=[]):
                        task.log_media(logger, ema.model if ema else model, batch, state.step)
                if state.step % train_config.val_every_steps == 0:
                    result.stopped_early = validate(counts=True)
                    patience = train_config.early_stopping_patience
                    if patience and state.bad_validations >= patience:
                        result.stopped_early = True
                eta.update(state.step, started)
                if train_config.max_minutes and _elapsed_minutes(started, runtime) >= (
                    train_config.max_minutes
                ):
                    result.out_of_time = True
                # Under DDP a rank that stopped alone would leave the others waiting forever in
                # the next all-reduce (and, if it was not rank 0, nothing would be saved).
                stopping = _any_rank(stop.requested, runtime)
                if (
                    state.step >= total_steps
                    or stopping
                    or result.stopped_early
                    or result.out_of_time
                ):
                    break
            if state.batches_in_epoch >= batches_per_epoch:
                state.epoch += 1
                state.batches_in_epoch = 0
                if runtime.is_main:
                    epoch_path = checkpoint_dir / f"{task.name}_epoch{state.epoch}.pt"
                    save_state(epoch_path, result.last_validation)
                    rotate(checkpoint_dir, f"{task.name}_epoch*.pt", train_config.keep_last)
                    save_state(last_path, result.last_validation)
                    good_state = snapshot(model)
    bar.close()
    if state.step % train_config.val_every_steps != 0 or not result.last_validation:
        validate(counts=False)
    if runtime.is_main:
        save_state(last_path, result.last_validation)
    logger.close()
    # Rank 0 saves last: the other ranks wait for it, so that whatever follows fit on any rank
    # (a resume, a task reading the checkpoint) finds rank 0's files complete.
    _any_rank(False, runtime)
    result.interrupted = stopping or stop.requested
    result.step, result.epoch, result.best_score = state.step, state.epoch, state.best_score
    result.elapsed_seconds = time.perf_counter() - started
    if ema:
        model.load_state_dict(ema.model.state_dict())
    return result


# --- pieces of the loop ---------------------------------------------------------------------


def _autocast(device: torch.device, enabled: bool):
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, list | tuple):
        return type(batch)(_to_device(item, device) for item in batch)
    if isinstance(batch, dict):
        return {key: _to_device(value, device) for key, value in batch.items()}
    return batch


def _batches(dataset: Dataset, batch_size: int, task: Task) -> Iterator[Any]:
    yield from DataLoader(dataset, batch_size, shuffle=False, collate_fn=task.collate)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _elapsed_minutes(started: float, runtime: Runtime) -> float:
    """Training minutes so far; under DDP rank 0's clock decides, so all ranks stop together."""
    minutes = (time.perf_counter() - started) / 60
    if not runtime.distributed:
        return minutes
    value = torch.tensor([minutes], dtype=torch.float64, device=runtime.device)
    torch.distributed.broadcast(value, src=0)
    return float(value)


def _any_rank(flag: bool, runtime: Runtime) -> bool:
    """True on every rank when `flag` is True on any rank; a barrier too."""
    if not runtime.distributed:
        return flag
    value = torch.tensor([float(flag)], device=runtime.device)
    torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
    return bool(value)


def _broadcast_score(score: float, runtime: Runtime) -> float:
    if not runtime.distributed:
        return score
    value = torch.tensor([score], dtype=torch.float64, device=runtime.device)
    torch.distributed.broadcast(value, src=0)
    return float(value)


def _give_up(last_path: Path, step: int, result: FitResult) -> None:
    raise TrainingError(
        f"the loss stayed non-finite at step {step} after {result.recoveries} recoveries "
        f"(each reloaded the last good state and halved the learning rate); "
        f"{last_path} holds the last good state. Lower train.learning_rate, "
        "set train.grad_clip, or look for broken audio in the data"
    )
