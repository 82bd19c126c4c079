"""The shared training loop, on a toy task: resume, checkpoints, schedules, accumulation,
recovery, signals, stopping."""

from __future__ import annotations

import math
import os
import signal

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from helius.config import load_config
from helius.errors import TrainingError
from helius.models.checkpoint import load_checkpoint
from helius.train import run as run_setup
from helius.train.task import Task, Validation
from helius.train.trainer import fit

BASE_LR = 0.01  # toy_config's train.learning_rate


class ToyData(Dataset):
    def __init__(self, size: int, seed: int) -> None:
        self.items = torch.randn(size, 1, 32, generator=torch.Generator().manual_seed(seed))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.items[index]


class ToyModel(nn.Module):
    def __init__(self, noise: float = 0.01) -> None:
        super().__init__()
        self.noise = noise
        self.net = nn.Sequential(nn.Linear(32, 8), nn.Tanh(), nn.Linear(8, 32))

    def forward(self, x: torch.Tensor, step: int | None = None) -> torch.Tensor:
        noisy = x + self.noise * torch.randn_like(x)  # uses the RNG, as a VAE's sampling does
        return self.net(noisy)


class ToyTask(Task):
    name = "toy"
    kind = "toy"
    sample_rate = 32

    def __init__(
        self,
        nan_steps: frozenset[int] = frozenset(),
        interrupt_at: int | None = None,
        nan_attempts: int | None = None,
        scores: list[float] | None = None,
        model_noise: float = 0.01,
    ):
        self.nan_steps, self.interrupt_at = nan_steps, interrupt_at
        self.scores = scores  # validation scores in turn; None: the validation error
        self.model_noise = model_noise
        self.nan_attempts = nan_attempts  # None: those steps are NaN forever
        self.nan_count = 0
        self.loss_calls = 0

    def build_model(self) -> nn.Module:
        return ToyModel(self.model_noise)

    def datasets(self):
        return ToyData(40, 0), ToyData(8, 1)

    def loss(self, model, batch, step):
        self.loss_calls += 1
        if self.interrupt_at is not None and step == self.interrupt_at:
            os.kill(os.getpid(), signal.SIGINT)
        loss = ((model(batch, step=step) - batch) ** 2).mean()
        if step in self.nan_steps and (
            self.nan_attempts is None or self.nan_count < self.nan_attempts
        ):
            self.nan_count += 1
            loss = loss * float("nan")
        return loss, {"mse": float(loss.detach())}

    @torch.no_grad()
    def validate(self, model, batches):
        errors = [float(((model(b) - b) ** 2).mean()) for b in batches]
        score = self.scores.pop(0) if self.scores else sum(errors) / len(errors)
        return Validation(score=score, metrics={"latent_health": {"active_dims": 1.0}})

    def log_media(self, logger, model, batch, step):
        logger.audio("audio/original", batch[0, 0], self.sample_rate, step)


def toy_config(tmp_path, *overrides: str):
    return load_config(
        None,
        [
            f"train.checkpoint_dir={tmp_path / 'ckpt'}",
            f"train.log_dir={tmp_path / 'runs'}",
            "train.batch_size=4",
            f"train.learning_rate={BASE_LR}",
            "train.warmup_steps=0",  # the toy runs a few dozen steps: no warm-up
            "train.val_every_steps=5",
            "train.device=cpu",
            "train.log_audio_every_steps=7",
            *overrides,
        ],
    )


def test_checkpoints_hold_everything_needed_and_rotate(tmp_path):
    result = fit(toy_config(tmp_path, "train.epochs=4", "train.keep_last=2"), ToyTask())
    ckpt = tmp_path / "ckpt"
    assert result.step == 40 and result.epoch == 4
    assert sorted(p.name for p in ckpt.glob("toy_epoch*.pt")) == ["toy_epoch3.pt", "toy_epoch4.pt"]
    payload = load_checkpoint(ckpt / "last.pt", kind="toy")
    assert {
        "model",
        "optimizer",
        "scheduler",
        "step",
        "epoch",
        "rng",
        "config",
        "metrics",
        "latent_health",
    } <= set(payload)
    assert payload["config"]["train"]["batch_size"] == 4 and payload["step"] == 40
    best = load_checkpoint(ckpt / "best.pt")
    assert best["metrics"]["score"] == pytest.approx(result.best_score)
    assert any((tmp_path / "runs").iterdir())  # TensorBoard event file
    assert result.losses[-1] < result.losses[0]


def test_resume_continues_exactly(tmp_path):
    full = fit(toy_config(tmp_path / "a", "train.max_steps=23"), ToyTask())
    fit(toy_config(tmp_path / "b", "train.max_steps=13"), ToyTask())
    resumed = fit(toy_config(tmp_path / "b", "train.max_steps=23"), ToyTask(), resume=True)
    assert resumed.step == 23
    assert resumed.losses == full.losses[13:]  # bit-identical on the CPU
    for a, b in zip(
        full.model.state_dict().values(), resumed.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)


def record_learning_rates(monkeypatch) -> list[float]:
    """The learning rate each optimiser step of the next fit uses, read as the step runs."""
    rates: list[float] = []
    build_optimizer = run_setup.build_optimizer

    def build(model, config):
        optimizer = build_optimizer(model, config)
        optimizer.register_step_pre_hook(
            lambda opt, args, kwargs: rates.append(opt.param_groups[0]["lr"])
        )
        return optimizer

    monkeypatch.setattr(run_setup, "build_optimizer", build)
    return rates


def warmup_then(schedule: str, step: int, warmup: int, total: int) -> float:
    """The documented rate of optimiser step `step` (0-based): a linear warm-up to the full
    rate over `warmup` steps, then constant, or a half cosine from the full rate at the end of
    the warm-up to zero at step `total`."""
    if step < warmup:
        return BASE_LR * (step + 1) / warmup
    if schedule == "constant":
        return BASE_LR
    return BASE_LR * 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_schedules_set_the_documented_rate_at_every_step(tmp_path, monkeypatch, schedule):
    rates = record_learning_rates(monkeypatch)
    config = toy_config(
        tmp_path,
        "train.max_steps=12",
        "train.grad_accum_steps=2",  # stepped per optimiser step, not per micro-batch
        f"train.lr_schedule={schedule}",
        "train.warmup_steps=3",
        "train.ema_decay=0.9",
    )
    assert fit(config, ToyTask()).step == 12
    assert rates == pytest.approx([warmup_then(schedule, k, 3, 12) for k in range(12)])
    payload = load_checkpoint(tmp_path / "ckpt" / "last.pt")
    assert payload["ema"] is not None and payload["batches_in_epoch"] == 4  # 24 micro-batches


def plateau_rates(scores: list[float], every: int, steps: int, patience: int, factor: float):
    """Rate per step: the full rate, multiplied by `factor` once more than `patience`
    validations in a row (one every `every` steps) have not improved on the best score."""
    rates, rate, best, bad = [], BASE_LR, math.inf, 0
    for step in range(1, steps + 1):
        rates.append(rate)
        if step % every == 0:
            score = scores[step // every - 1]
            best, bad = (score, 0) if score < best else (best, bad + 1)
            if bad > patience:
                rate, bad = rate * factor, 0
    return rates


def test_plateau_lowers_the_rate_after_validations_without_improvement(tmp_path, monkeypatch):
    """Warm-up does not apply to plateau: it starts at the full rate."""
    rates = record_learning_rates(monkeypatch)
    scores = [5.0, 4.0, 4.5, 4.6, 3.0, 3.5, 3.6, 3.7, 3.8, 2.0]  # two plateaus, then better
    config = toy_config(
        tmp_path,
        "train.max_steps=20",
        "train.val_every_steps=2",
        "train.lr_schedule=plateau",
        "train.plateau_patience=1",
        "train.plateau_factor=0.5",
        "train.warmup_steps=3",
    )
    fit(config, ToyTask(scores=list(scores)))
    expected = plateau_rates(scores, every=2, steps=20, patience=1, factor=0.5)
    assert expected[-1] == BASE_LR / 8  # the expectation itself has three reductions
    assert rates == pytest.approx(expected)


class SGD(torch.optim.SGD):
    """Plain SGD: unlike Adam, its update is proportional to the gradient's size, so it also
    shows whether the accumulated gradient is scaled as one large batch's."""

    def __init__(self, parameter_groups, config) -> None:
        super().__init__(parameter_groups, lr=config.learning_rate)


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_accumulating_k_micro_batches_equals_one_batch_k_times_larger(
    tmp_path, monkeypatch, optimizer
):
    if optimizer == "sgd":
        monkeypatch.setattr(run_setup, "build_optimizer", SGD)

    def one_step(name: str, batch_size: int, accumulate: int) -> dict[str, torch.Tensor]:
        config = toy_config(
            tmp_path / name,
            "train.max_steps=1",
            f"train.batch_size={batch_size}",
            f"train.grad_accum_steps={accumulate}",
            "train.grad_clip=null",  # clipping would hide a wrongly scaled gradient
        )
        # No noise in the model: the same items give the same gradient in any batching.
        return fit(config, ToyTask(model_noise=0.0)).model.state_dict()

    torch.manual_seed(0)  # fit seeds train.seed = 0 before building the model
    start = ToyModel().state_dict()
    accumulated, large = one_step("accumulated", 4, 3), one_step("large", 12, 1)
    first_micro_batch = one_step("small", 4, 1)
    for name, value in large.items():
        assert not torch.equal(value, start[name])  # the step moved every weight
        torch.testing.assert_close(accumulated[name], value, rtol=1e-5, atol=1e-7)
    # The comparison can tell one micro-batch's update from the whole window's.
    assert any(
        not torch.allclose(first_micro_batch[name], value, rtol=1e-5, atol=1e-7)
        for name, value in large.items()
    )


def test_nonfinite_steps_are_skipped_then_recovered_with_half_the_lr(tmp_path):
    config = toy_config(tmp_path, "train.max_steps=15", "train.max_nonfinite_steps=3")
    task = ToyTask(nan_steps=frozenset({4}), nan_attempts=4)
    result = fit(config, task)
    # Step 4 fails three times in a row, the last good state is reloaded with half the LR,
    # the fourth attempt fails once more and the fifth succeeds.
    assert result.skipped_nonfinite == 4 and result.recoveries == 1
    assert result.step == 15
    payload = load_checkpoint(tmp_path / "ckpt" / "last.pt")
    assert payload["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.005)


def test_a_loss_that_never_recovers_stops_with_a_clear_error(tmp_path):
    config = toy_config(tmp_path, "train.max_steps=15", "train.max_nonfinite_steps=2")
    with pytest.raises(TrainingError, match="non-finite at step 4 after 3 recoveries"):
        fit(config, ToyTask(nan_steps=frozenset({4})))


def test_sigint_saves_and_stops_cleanly(tmp_path):
    before = signal.getsignal(signal.SIGINT)  # default_int_handler, or SIG_IGN under nohup
    result = fit(toy_config(tmp_path, "train.epochs=50"), ToyTask(interrupt_at=6))
    assert result.interrupted and result.step == 7
    assert load_checkpoint(tmp_path / "ckpt" / "last.pt")["step"] == 7
    assert signal.getsignal(signal.SIGINT) is before  # the trainer's handler is gone again


def test_early_stopping(tmp_path):
    config = toy_config(
        tmp_path,
        "train.epochs=100",
        "train.learning_rate=1e-9",
        "train.early_stopping_patience=2",
        "train.val_every_steps=2",
    )
    result = fit(config, ToyTask())
    assert result.stopped_early and result.step < 20


def test_a_time_budget_stops_after_the_step_that_exceeds_it(tmp_path):
    result = fit(toy_config(tmp_path, "train.epochs=50", "train.max_minutes=1e-9"), ToyTask())
    assert result.out_of_time and result.step == 1
    assert load_checkpoint(tmp_path / "ckpt" / "last.pt")["step"] == 1
