"""Adding a system through the documented steps (docs/architecture.md): register a toy kind,
load its config by model.kind, train it with the shared fit, reload it from its checkpoint."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import toy_system

from helius import registry
from helius.cli import main
from helius.config import load_config
from helius.errors import ConfigError
from helius.models.checkpoint import CheckpointError, load_model, load_vae
from helius.train.trainer import fit

DOCS = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


@pytest.fixture
def toy_kind():
    """The toy kind, registered by running docs/architecture.md's own registration block."""
    (block,) = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.S)
    exec(block, {})
    yield registry.get("toy")
    registry.unregister("toy")


def _toy_config(tmp_path, *overrides):
    path = tmp_path / "toy.yaml"
    path.write_text("model:\n  kind: toy\ntrain:\n  learning_rate: 0.05\n  warmup_steps: 0\n")
    return load_config(
        path,
        [
            "train.max_steps=300",
            "train.val_every_steps=100",
            "train.device=cpu",
            f"train.checkpoint_dir={tmp_path / 'checkpoints'}",
            f"train.log_dir={tmp_path / 'runs'}",
            *overrides,
        ],
    )


def test_a_registered_system_trains_and_reloads_with_fit(toy_kind, tmp_path):
    config = _toy_config(tmp_path)
    assert isinstance(config, toy_system.ToyConfig)  # picked by model.kind: toy
    torch.manual_seed(0)
    result = fit(config, toy_kind.task(config))
    assert result.step == 300

    model, stored = load_model(tmp_path / "checkpoints" / "best.pt", kind="toy")
    assert isinstance(stored, toy_system.ToyConfig)
    x = torch.linspace(-1, 1, 11).unsqueeze(1)
    with torch.no_grad():
        assert torch.allclose(model(x), 3 * x + 1, atol=0.05)  # the known answer, not itself


def test_a_config_only_accepts_its_own_systems_keys(toy_kind, tmp_path):
    with pytest.raises(ConfigError, match="model.wave: unknown key; valid keys here: kind, inputs"):
        _toy_config(tmp_path, "model.wave.bands=4")
    with pytest.raises(ConfigError, match="known kinds: clip_vae, .*toy, .*wave_vae"):
        _toy_config(tmp_path, "model.kind=toys")


def test_loaders_tell_kinds_apart(toy_kind, tmp_path):
    config = _toy_config(tmp_path, "train.max_steps=2")
    fit(config, toy_kind.task(config))
    with pytest.raises(CheckpointError, match="holds a toy model, but a vae checkpoint"):
        load_vae(tmp_path / "checkpoints" / "last.pt")


def test_config_show_and_kinds_list_the_registered_system(toy_kind, tmp_path, capsys):
    (tmp_path / "toy.yaml").write_text("model:\n  kind: toy\n")
    assert main(["config", "show", "--config", str(tmp_path / "toy.yaml")]) == 0
    shown = capsys.readouterr().out
    assert "kind: toy" in shown and "inputs: 1" in shown and "wave:" not in shown
    assert main(["config", "kinds"]) == 0
    assert "toy        Toy" in capsys.readouterr().out


def test_every_built_in_kind_resolves_its_schema_builder_and_task():
    """A registry entry names its parts by dotted path: each must import and fit together."""
    from helius.train.task import Task

    for kind in registry.KINDS.values():
        schema = kind.config_schema()
        config = schema()
        assert {"model", "train"} <= set(schema.model_fields), kind.name
        assert kind.build(config) is not None
        task_class = kind.task_type()
        assert issubclass(task_class, Task) and task_class.kind == kind.checkpoint_kind
