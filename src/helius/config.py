"""Typed configuration: pydantic sections, YAML loading and `--set section.key=value` overrides.

One `HeliusConfig` travels from the YAML file into the trainer and into every checkpoint.
Unknown keys and wrong types fail at load with the field's dotted path, the offending value
and the file they came from.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from helius.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("configs/config.yaml")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(Section):
    """Where the prepared data is and how audio is cut (must match `helius prep`)."""

    train_index: str = Field("data/train_index.txt", description="index written by helius prep")
    val_index: str = Field("data/val_index.txt", description="validation index from helius prep")
    sample_rate: int = Field(48000, gt=0, description="Hz; prep resamples to this")
    segment_seconds: float = Field(2.0, gt=0, description="length of each prepared segment")
    mono: bool = Field(True, description="downmix to one channel")
    silence_threshold_db: float = Field(
        -60.0, le=0, description="segments whose RMS is below this (dBFS) are dropped"
    )
    val_fraction: float = Field(0.02, ge=0, lt=1, description="share of source files for val")


class ModelConfig(Section):
    """Which model to build and its size; the VAE issue fills in the architecture."""

    kind: Literal["wave_vae", "clip_vae"] = "wave_vae"
    latent_dim: int = Field(16, ge=1, le=128)


class TrainConfig(Section):
    """Optimisation and bookkeeping shared by every trained model."""

    epochs: int = Field(10, ge=1)
    batch_size: int = Field(8, ge=1)
    learning_rate: float = Field(1e-4, gt=0)
    seed: int = 0
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N or mps")
    checkpoint_dir: str = "checkpoints"
    log_dir: str = "runs"


class PriorConfig(Section):
    """The latent prior trained on the VAE's latent sequences."""

    kind: Literal["gru", "transformer"] = "gru"
    hidden_size: int = Field(256, ge=1)
    num_layers: int = Field(2, ge=1)
    epochs: int = Field(10, ge=1)
    learning_rate: float = Field(1e-3, gt=0)


class HeliusConfig(Section):
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    prior: PriorConfig = Field(default_factory=PriorConfig)


def load_config(
    path: str | os.PathLike | None = None, overrides: list[str] | None = None
) -> HeliusConfig:
    """Read a YAML config (None: the built-in defaults), apply `a.b=value` overrides, validate."""
    raw: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        raw = _read_yaml(Path(path))
    for override in overrides or []:
        _apply_override(raw, override)
        source = f"{source} + --set"
    return validate_config(raw, source)


def validate_config(raw: dict[str, Any], source: str = "config") -> HeliusConfig:
    """Build a HeliusConfig from plain data, turning pydantic errors into one readable message."""
    try:
        return HeliusConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(f"invalid config ({source}):\n" + _describe(error)) from None


def config_to_yaml(config: HeliusConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(
            f"config file {path} does not exist (the default is {DEFAULT_CONFIG_PATH})"
        )
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path} must hold a mapping of sections (data, model, train, prior)")
    return loaded


def _apply_override(raw: dict[str, Any], override: str) -> None:
    key, separator, text = override.partition("=")
    parts = key.strip().split(".")
    if not separator or len(parts) < 2 or not all(parts):
        raise ConfigError(
            f"--set {override!r}: expected section.key=value, e.g. data.sample_rate=44100"
        )
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        value = text
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {override!r}: {part} is a value, not a section")
        node = child
    node[parts[-1]] = value


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        path = ".".join(str(part) for part in item["loc"])
        if item["type"] == "extra_forbidden":
            lines.append(f"  {path}: unknown key{_valid_keys_hint(item['loc'])}")
        else:
            lines.append(f"  {path}: {item['msg']} (got {item.get('input')!r})")
    return "\n".join(lines)


def _valid_keys_hint(location: tuple[Any, ...]) -> str:
    model: type[BaseModel] = HeliusConfig
    for part in location[:-1]:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return ""
        model = annotation
    return "; valid keys here: " + ", ".join(model.model_fields)
