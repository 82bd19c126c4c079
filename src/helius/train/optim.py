"""Optimiser, learning-rate schedules and EMA weights, built from the `train` config section."""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

from helius.config import TrainConfig
from helius.errors import ConfigError
from helius.train.stopping import UNLIMITED_STEPS


def build_optimizer(
    parameter_groups: list[dict[str, Any]], config: TrainConfig
) -> torch.optim.Optimizer:
    """AdamW over a task's parameter groups (`Task.parameter_groups`: their weight decay)."""
    return torch.optim.AdamW(
        parameter_groups,
        lr=config.learning_rate,
        betas=tuple(config.betas),
        weight_decay=config.weight_decay,
    )


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int):
    """constant, warm-up + cosine (stepped per optimiser step), or plateau (per validation)."""
    if config.lr_schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=config.plateau_factor, patience=config.plateau_patience
        )
    warmup = config.warmup_steps
    if config.lr_schedule == "cosine" and total_steps >= UNLIMITED_STEPS:
        raise ConfigError(
            "train.lr_schedule=cosine decays over the run's steps, but only a time budget "
            "limits this run: set train.max_steps or train.epochs too"
        )

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if config.lr_schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def scale_learning_rate(optimizer: torch.optim.Optimizer, scheduler, factor: float) -> None:
    """Multiply the learning rate now and in every later scheduled value."""
    for group in optimizer.param_groups:
        group["lr"] *= factor
    if hasattr(scheduler, "base_lrs"):
        scheduler.base_lrs = [lr * factor for lr in scheduler.base_lrs]
    if hasattr(scheduler, "min_lrs"):
        scheduler.min_lrs = [lr * factor for lr in scheduler.min_lrs]


class EMA:
    """An exponential moving average of a model's weights, used for validation and export."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for ema_value, value in zip(
            self.model.state_dict().values(), model.state_dict().values(), strict=True
        ):
            if ema_value.dtype.is_floating_point:
                ema_value.lerp_(value.detach(), 1.0 - self.decay)
            else:
                ema_value.copy_(value)
