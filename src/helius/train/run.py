"""What one `fit` call sets up and carries through the run: `set_up` builds the model, data,
optimiser, schedule and logging into a `Run` (restoring last.pt on resume), whose `state` every
checkpoint holds; `FitResult` is what the run reports at the end."""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from helius import progress
from helius.config import HeliusConfig, TrainConfig
from helius.data.dataset import EpochSampler
from helius.errors import DataError
from helius.train.checkpointing import restore, save
from helius.train.logging import TrainLogger
from helius.train.loop import NonFiniteGuard, autocast
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


@dataclass
class FitResult:
    """What a run did: returned by `fit` (the model holds the EMA weights when there is one)."""

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
class RunState:
    """Where the run is: saved in every checkpoint, restored on resume."""

    step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0
    best_score: float = math.inf
    bad_validations: int = 0


@dataclass
class Run:
    """Everything `fit` set up for one run (by `set_up`), and what changes as it goes."""

    config: HeliusConfig
    task: Task
    runtime: Runtime
    model: nn.Module  # the weights that are saved, validated and clipped
    trained: nn.Module  # the same model as stepped: compiled and/or wrapped in DDP
    train_set: Dataset
    val_set: Dataset | None
    sampler: EpochSampler
    loader: DataLoader
    optimizer: torch.optim.Optimizer
    scheduler: Any
    ema: EMA | None
    state: RunState
    guard: NonFiniteGuard
    logger: TrainLogger
    bar: Any  # progress.bar's tqdm
    eta: EtaReporter
    result: FitResult
    autocast: contextlib.AbstractContextManager
    on_validation: Callable[[int, Validation], bool] | None
    checkpoint_dir: Path
    last_path: Path
    batches_per_epoch: int
    total_steps: int
    total_epochs: int | None  # when train.epochs (or max_steps) fixes it; None with a time budget
    budget_seconds: int | None  # train.max_minutes in seconds: the bar counts those instead
    started: float  # time.perf_counter() when the loop's clock started
    stop: StopFlag = field(default_factory=StopFlag)
    # stop.requested as every rank agreed on it (see agree_to_stop). A signal reaches each rank
    # at its own moment; the loop must only ever look at this agreed value.
    stopping: bool = False

    @property
    def train(self) -> TrainConfig:
        return self.config.train

    def backward(self, batch: Any, last: bool) -> tuple[torch.Tensor, dict[str, float]]:
        """The forward and backward pass of one micro-batch (`last`: the window's last one),
        as `accumulate_window` calls it; returns the task's loss and logs."""
        # DDP averages gradients only on the last micro-batch of a window.
        all_reduce_now = last or not self.runtime.distributed
        with contextlib.nullcontext() if all_reduce_now else self.trained.no_sync():
            with self.autocast:
                loss, logs = self.task.loss(self.trained, batch, self.state.step)
            # Always backward, even on NaN: under DDP every rank must join the all-reduce,
            # and the NaN then shows in every rank's gradient norm alike.
            (loss / self.train.grad_accum_steps).backward()
        self.state.batches_in_epoch += 1
        self.result.audio_seconds += self.task.batch_seconds(batch) * self.runtime.world_size
        return loss, logs

    def agree_to_stop(self) -> bool:
        """Whether SIGINT/SIGTERM reached any rank, as every rank agrees (kept in `stopping`).
        Under DDP a rank that stopped alone would leave the others waiting forever in the next
        all-reduce (and, if it was not rank 0, nothing would be saved)."""
        self.stopping = self.runtime.any_rank(self.stop.requested)
        return self.stopping

    def save(self, path: Path, metrics: dict[str, Any]) -> None:
        """Write a checkpoint of the run as it stands. Rank 0 alone writes a run's files:
        on the other ranks this does nothing."""
        if self.runtime.is_main:
            save(
                path,
                self.config,
                self.task,
                self.model,
                self.optimizer,
                self.scheduler,
                self.ema,
                self.state,
                metrics,
            )


def set_up(
    config: HeliusConfig,
    task: Task,
    resume: bool | str | os.PathLike,
    on_validation: Callable[[int, Validation], bool] | None,
) -> Run:
    """Device, model, data, optimiser and schedule; the state of last.pt on resume; the loader,
    logger and progress bar."""
    train_config = config.train
    runtime = start_runtime(train_config.device)
    if runtime.device.type == "cpu":
        keep_freed_memory()
    seed_everything(train_config.seed)  # same initial weights on every rank
    model = task.build_model().to(runtime.device)
    train_set, val_set = task.datasets()
    checkpoint_dir = Path(train_config.checkpoint_dir)
    # Tasks sharing a folder keep their own last/best files (prior_last.pt beside last.pt).
    last_path = checkpoint_dir / f"{task.checkpoint_prefix}last.pt"
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
    state = RunState()
    if resume:
        source = last_path if resume is True else Path(resume)
        restore(source, task, model, optimizer, scheduler, ema, state)
        runtime.seed_streams(train_config.seed, resumed_step=state.step)
    else:
        runtime.seed_streams(train_config.seed)

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
    logger = TrainLogger(
        Path(train_config.log_dir), enabled=runtime.is_main and train_config.tensorboard
    )
    guard = NonFiniteGuard(
        model,
        optimizer,
        scheduler,
        last_path,
        train_config.max_nonfinite_steps,
        logger,
        distributed=runtime.distributed,
    )
    # With a time budget the bar counts seconds, so its ETA is the budget's, not the epochs'.
    budget_seconds = round(train_config.max_minutes * 60) if train_config.max_minutes else None
    bar = progress.bar(
        total=budget_seconds or total_steps,
        initial=0 if budget_seconds else state.step,
        desc=f"train {task.name}",
        unit="s" if budget_seconds else "step",
        disable=not runtime.is_main,
    )
    if runtime.is_main:
        hint = task.resume_hint
        progress.note(stop_rule(train_config, steps_per_epoch, total_steps, state.step, hint))
    return Run(
        config=config,
        task=task,
        runtime=runtime,
        model=model,
        trained=trained,
        train_set=train_set,
        val_set=val_set,
        sampler=sampler,
        loader=loader,
        optimizer=optimizer,
        scheduler=scheduler,
        ema=ema,
        state=state,
        guard=guard,
        logger=logger,
        bar=bar,
        eta=EtaReporter(train_config, total_steps),
        result=FitResult(model, checkpoint_dir=checkpoint_dir, last_path=last_path),
        autocast=autocast(runtime.device, train_config.amp),
        on_validation=on_validation,
        checkpoint_dir=checkpoint_dir,
        last_path=last_path,
        batches_per_epoch=batches_per_epoch,
        total_steps=total_steps,
        total_epochs=-(-total_steps // steps_per_epoch) if not budget_seconds else None,
        budget_seconds=budget_seconds,
        started=time.perf_counter(),
    )
