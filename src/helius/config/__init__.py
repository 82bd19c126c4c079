"""Typed configuration, by system: the shared base (`base`: sections, YAML, `--set` overrides,
readable errors), the training section every system shares (`train`), and each system's own
schema (`audio`: the audio VAEs and the prior). `load_config` reads a YAML file, asks the
registry which schema its `model.kind` names, and validates against that schema alone, so a
config (and the checkpoint that stores it) holds its own system's sections only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from helius import registry
from helius.config.audio import (
    AdversarialConfig,
    AudioVAEConfig,
    BetaConfig,
    ClipModelConfig,
    DataConfig,
    HeliusConfig,
    LossConfig,
    ModelConfig,
    PriorConfig,
    PriorTrainConfig,
    StftModelConfig,
    VAETrainConfig,
    WaveModelConfig,
)
from helius.config.base import DEFAULT_CONFIG_PATH, Section, config_to_yaml, read_raw, validate
from helius.config.train import TrainConfig
from helius.errors import ConfigError

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "AdversarialConfig",
    "AudioVAEConfig",
    "BetaConfig",
    "ClipModelConfig",
    "DataConfig",
    "HeliusConfig",
    "LossConfig",
    "ModelConfig",
    "PriorConfig",
    "PriorTrainConfig",
    "Section",
    "StftModelConfig",
    "TrainConfig",
    "VAETrainConfig",
    "WaveModelConfig",
    "config_to_yaml",
    "load_config",
    "schema_for",
    "validate_config",
]


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | None = None) -> Any:
    """Read a YAML config (None: the built-in defaults), apply `a.b=value` overrides, and
    validate it against the schema of the kind its `model.kind` names."""
    raw, source = read_raw(Path(path) if path is not None else None, overrides)
    return validate_config(raw, source)


def validate_config(raw: dict[str, Any], source: str = "config") -> Any:
    """A config from plain data (a checkpoint's, or a parsed file), by its kind's schema."""
    return validate(schema_for(registry.kind_of_raw(raw), source), raw, source)


def schema_for(kind: str, source: str = "config") -> type:
    """The config schema of a model kind, with an error naming the known kinds."""
    try:
        return registry.get(kind).config_schema()
    except registry.UnknownKind as error:
        raise ConfigError(f"invalid config ({source}): model.kind: {error}") from None
