"""A toy system added the way docs/architecture.md says a system is added: a config schema, a
model builder, a Task, and one registry entry (tests/train/test_toy_system.py uses it).

It learns y = 3x + 1 from noisy pairs with one linear layer: small enough to train in a test,
with an answer known in advance.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn
from torch.utils.data import Dataset

from helius import registry
from helius.config import Section, TrainConfig
from helius.train.task import Task, Validation


# 1. The system's config: its own sections plus the shared TrainConfig.
class ToyModelConfig(Section):
    kind: Literal["toy"] = "toy"
    inputs: int = Field(1, ge=1)


class ToyConfig(Section):
    model: ToyModelConfig = Field(default_factory=ToyModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)


# 2. The builder: a model from a validated config alone.
def build(config: ToyConfig) -> nn.Module:
    return nn.Linear(config.model.inputs, 1)


class Pairs(Dataset):
    def __init__(self, count: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.x = torch.rand(count, 1, generator=generator) * 2 - 1
        self.y = 3 * self.x + 1 + 0.01 * torch.randn(count, 1, generator=generator)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int):
        return self.x[index], self.y[index]


# 3. The task: the hooks the shared trainer calls.
class ToyTask(Task):
    name = "toy"
    kind = "toy"

    def __init__(self, config: ToyConfig) -> None:
        self.config = config

    def build_model(self) -> nn.Module:
        return registry.get("toy").build(self.config)

    def datasets(self):
        return Pairs(256, seed=1), Pairs(64, seed=2)

    def loss(self, model, batch, step):
        x, y = batch
        loss = nn.functional.mse_loss(model(x), y)
        return loss, {"mse": float(loss.detach())}

    def validate(self, model, batches) -> Validation:
        errors = [nn.functional.mse_loss(model(x), y).item() for x, y in batches]
        mse = sum(errors) / len(errors)
        return Validation(score=mse, metrics={"mse": mse})


# 4. The registry entry: docs/architecture.md's block (the test registers it from there).
