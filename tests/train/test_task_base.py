"""The Task base class: its defaults, and what `fit` does with a validation's direction and the
on_validation callback."""

from __future__ import annotations

import torch
from test_trainer import ToyTask, toy_config
from torch import nn

from helius.models.checkpoint import load_checkpoint
from helius.train.task import Task, Validation
from helius.train.trainer import fit


def test_weight_decay_only_on_matrices_and_kernels() -> None:
    model = nn.Sequential(nn.Conv1d(2, 4, 3), nn.LayerNorm(4), nn.Linear(4, 3))
    model[2].bias.requires_grad_(False)  # frozen parameters stay out of the optimizer
    decayed, kept = Task().parameter_groups(model, 0.1)
    assert decayed["weight_decay"] == 0.1 and kept["weight_decay"] == 0.0
    assert {id(p) for p in decayed["params"]} == {id(model[0].weight), id(model[2].weight)}
    assert {id(p) for p in kept["params"]} == {
        id(model[0].bias),
        id(model[1].weight),
        id(model[1].bias),
    }


def test_defaults_stack_items_and_count_audio_seconds() -> None:
    task = Task()
    batch = task.collate([torch.zeros(1, 8), torch.ones(1, 8)])
    assert batch.shape == (2, 1, 8) and float(batch[1].sum()) == 8.0
    assert task.batch_seconds(batch) == 0.0  # no sample rate: symbolic data
    task.sample_rate = 4
    assert task.batch_seconds(batch) == 2 * 8 / 4
    assert task.extra_state() == {} and task.validation_warning(Validation(1.0), 0) is None


def test_validation_direction() -> None:
    assert Validation(3.0).cost == 3.0
    assert Validation(3.0, higher_is_better=True).cost == -3.0
    assert Validation(2.0, {"a": 1}).record() == {"a": 1, "score": 2.0}


class HigherIsBetter(ToyTask):
    """Scores rise and fall: with higher_is_better, best.pt must hold the highest."""

    def validate(self, model, batches):
        plain = super().validate(model, batches)
        return Validation(score=plain.score, metrics=plain.metrics, higher_is_better=True)


def test_best_checkpoint_follows_the_score_direction(tmp_path) -> None:
    scores = [1.0, 5.0, 2.0, 3.0]  # validations at steps 5, 10, 15, 20
    fit(toy_config(tmp_path, "train.max_steps=20"), HigherIsBetter(scores=list(scores)))
    best = load_checkpoint(tmp_path / "ckpt" / "best.pt")
    assert best["step"] == 10 and best["metrics"]["score"] == 5.0


def test_on_validation_can_stop_the_run(tmp_path) -> None:
    seen: list[tuple[int, float]] = []

    def prune(step: int, validation: Validation) -> bool:
        seen.append((step, validation.score))
        return step >= 10

    result = fit(
        toy_config(tmp_path, "train.max_steps=40"), ToyTask(scores=[4.0, 3.0, 2.0]), False, prune
    )
    assert seen == [(5, 4.0), (10, 3.0)]
    assert result.step == 10 and result.stopped_early
