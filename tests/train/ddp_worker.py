"""Training runs for tests/train/test_ddp.py: `fit` a task and record what every step did.

As a script, one process per rank under torchrun (or one process alone):
    python ddp_worker.py {toy,vae} OUT_DIR [--interrupt_rank R --interrupt_step S]
                         [--resume_set key=value ...] [--set key=value ...]
writes OUT_DIR/rank{R}.pt (see `train`). The tests also call `train` in-process for the
single-process reference. Not collected by pytest (no test_ prefix).
"""

from __future__ import annotations

import argparse
import atexit
import os
import signal
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook
from torch.utils.data import Dataset

from helius import progress
from helius.config import load_config
from helius.train.task import Task, Validation
from helius.train.trainer import fit
from helius.train.vae_task import VAETask

REPO = Path(__file__).resolve().parents[2]


class ToyData(Dataset):
    def __init__(self, size: int, seed: int) -> None:
        self.items = torch.randn(size, 1, 16, generator=torch.Generator().manual_seed(seed))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.items[index]


class ToyTask(Task):
    """An MLP autoencoder with no randomness in its forward pass: ranks draw different noise,
    so only a deterministic model can match single-process training exactly."""

    name = "toy"
    kind = "toy"
    sample_rate = 16

    def __init__(self) -> None:
        # One draw of the global RNG per loss call: the stream a VAE would sample z from.
        self.noise_probe: list[float] = []

    def build_model(self) -> nn.Module:
        return nn.Sequential(nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 16))

    def datasets(self):
        return ToyData(40, 0), ToyData(8, 1)

    def loss(self, model, batch, step):
        self.noise_probe.append(float(torch.rand(())))
        loss = ((model(batch) - batch) ** 2).mean()
        return loss, {"mse": float(loss.detach())}

    @torch.no_grad()
    def validate(self, model, batches):
        errors = [float(((model(b) - b) ** 2).mean()) for b in batches]
        return Validation(score=sum(errors) / len(errors))

    def log_media(self, logger, model, batch, step):
        logger.audio("audio/original", batch[0, 0], self.sample_rate, step)


def interrupting(task, rank: int, interrupt_rank: int | None, interrupt_step: int | None):
    """Wrap task.loss so that rank `interrupt_rank` sends itself SIGINT at `interrupt_step`,
    as when a signal reaches one process of a run before the others."""
    loss = task.loss

    def wrapped(model, batch, step):
        if rank == interrupt_rank and step == interrupt_step:
            os.kill(os.getpid(), signal.SIGINT)
            task.loss = loss  # once
        return loss(model, batch, step)

    task.loss = wrapped
    return task


def train(
    task_name: str,
    out_dir: Path,
    overrides: list[str],
    interrupt_rank: int | None = None,
    interrupt_step: int | None = None,
    resume_overrides: list[str] | None = None,
) -> dict[str, Any]:
    """`fit` the task (then, with resume_overrides, `fit` again with resume=True in this same
    process); save and return this rank's record: parameters after every optimiser step (by
    name), losses, the toy's noise probe, pid and what `fit` returned."""
    rank = int(os.environ.get("RANK", "0"))

    def make(extra: list[str]):
        if task_name == "toy":
            return load_config(None, [*overrides, *extra]), ToyTask()
        config = load_config(REPO / "configs" / "tiny.yaml", [*overrides, *extra])
        return config, VAETask(config)

    history: list[list[torch.Tensor]] = []  # model.parameters() order (the optimiser's)

    def record(optimizer, *_):
        history.append([p.detach().clone() for g in optimizer.param_groups for p in g["params"]])

    hook = register_optimizer_step_post_hook(record)
    try:
        config, task = make([])
        result = fit(config, interrupting(task, rank, interrupt_rank, interrupt_step))
        first = {"step": result.step, "interrupted": result.interrupted}
        losses = list(result.losses)
        probe = list(getattr(task, "noise_probe", []))
        if resume_overrides is not None:
            config, task = make(resume_overrides)
            result = fit(config, task, resume=True)
            losses += result.losses
            probe += getattr(task, "noise_probe", [])
    finally:
        hook.remove()
    names = [name for name, _ in result.model.named_parameters()]
    record_ = {
        "rank": rank,
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),
        "pid": os.getpid(),
        "first_fit": first,
        "step": result.step,
        "epoch": result.epoch,
        "interrupted": result.interrupted,
        "best_score": result.best_score,
        "losses": losses,
        "noise_probe": probe,
        "history": [dict(zip(names, params, strict=True)) for params in history],
        "model": {k: v.detach().clone() for k, v in result.model.state_dict().items()},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save(record_, out_dir / f"rank{rank}.pt")
    return record_


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("task", choices=["toy", "vae"])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--interrupt_rank", type=int, default=None)
    parser.add_argument("--interrupt_step", type=int, default=None)
    parser.add_argument(
        "--resume_set",
        action="append",
        default=None,
        help="after the first fit, fit again with resume=True and these extra overrides",
    )
    args = parser.parse_args()
    progress.set_enabled(False)
    rank = os.environ.get("RANK", "0")
    # Registered before fit joins the process group, so it runs after fit's own exit handler.
    atexit.register(
        lambda: print(f"rank {rank} left the process group: {not dist.is_initialized()}")
    )
    train(
        args.task,
        args.out_dir,
        args.overrides,
        args.interrupt_rank,
        args.interrupt_step,
        args.resume_set,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
