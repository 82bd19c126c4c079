"""Training checkpoints of the loop: save everything needed to resume, restore it, and recover
the last good weights after repeated non-finite steps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from helius.errors import DataError
from helius.models.checkpoint import load_checkpoint, save_checkpoint
from helius.train.optim import scale_learning_rate
from helius.train.runtime import rng_state, set_rng_state


def snapshot(model: nn.Module) -> dict[str, Any]:
    """An in-memory copy of the weights, the fallback when no last.pt exists yet."""
    return {"model": {k: v.detach().clone() for k, v in model.state_dict().items()}}


def recover(path: Path, model, optimizer, scheduler, good_state: dict[str, Any]) -> None:
    """Reload the last good weights and halve the learning rate after repeated NaN/inf."""
    if path.is_file():
        model.load_state_dict(load_checkpoint(path)["model"])
    else:
        model.load_state_dict(good_state["model"])
    for group_state in optimizer.state.values():
        group_state.clear()  # moments built from bad gradients would push straight back
    scale_learning_rate(optimizer, scheduler, 0.5)


def save(path: Path, config, task, model, optimizer, scheduler, ema, state, metrics) -> None:
    save_checkpoint(
        path,
        {
            "kind": task.kind,
            "config": config.model_dump(mode="json"),
            "model": model.state_dict(),
            "ema": ema.model.state_dict() if ema else None,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "step": state.step,
            "epoch": state.epoch,
            "batches_in_epoch": state.batches_in_epoch,
            "best_score": state.best_score,
            "bad_validations": state.bad_validations,
            "rng": rng_state(),
            "task_state": task.extra_state(),
            "metrics": {k: v for k, v in metrics.items() if _is_number(v)},
            "latent_health": metrics.get("latent_health", {}),
        },
    )


def restore(path: Path, task, model, optimizer, scheduler, ema, state) -> None:
    if not path.is_file():
        raise DataError(f"resume: {path} does not exist; train without resuming first")
    payload = load_checkpoint(path, kind=task.kind)
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    if ema and payload.get("ema"):
        ema.model.load_state_dict(payload["ema"])
    state.step, state.epoch = payload["step"], payload["epoch"]
    state.batches_in_epoch = payload["batches_in_epoch"]
    state.best_score, state.bad_validations = payload["best_score"], payload["bad_validations"]
    set_rng_state(payload["rng"])
    task.load_extra_state(payload.get("task_state") or {})


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
