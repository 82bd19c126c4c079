"""The config base every system shares: `Section`, YAML reading, `--set a.b=value` overrides,
and validation errors that name the dotted key path, the offending value, the source and the
valid keys. It knows no system: a caller (normally `helius.config.load_config`, which asks the
registry) passes the schema to validate against.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from helius.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("configs/config.yaml")


class Section(BaseModel):
    """A config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def read_raw(path: Path | None, overrides: list[str] | None) -> tuple[dict[str, Any], str]:
    """Plain data of a YAML file (None: empty) with the overrides applied, and a label of where
    it came from for error messages."""
    raw: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        raw = _read_yaml(Path(path))
    for override in overrides or []:
        apply_override(raw, override)
        source = f"{source} + --set"
    return raw, source


def validate(schema: type[BaseModel], raw: dict[str, Any], source: str = "config") -> Any:
    """`schema` built from plain data, pydantic's errors turned into one readable message."""
    try:
        return schema.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(f"invalid config ({source}):\n" + _describe(error, schema)) from None


def config_to_yaml(config: BaseModel) -> str:
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
        raise ConfigError(f"{path} must hold a mapping of sections (data, model, train, ...)")
    return loaded


def apply_override(raw: dict[str, Any], override: str) -> None:
    """Set `section.key=value` (value parsed as YAML) in plain config data."""
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


def _describe(error: ValidationError, schema: type[BaseModel]) -> str:
    lines = []
    for item in error.errors():
        path = ".".join(str(part) for part in item["loc"])
        if item["type"] == "extra_forbidden":
            lines.append(f"  {path}: unknown key{_valid_keys_hint(item['loc'], schema)}")
        else:
            lines.append(f"  {path}: {item['msg']} (got {item.get('input')!r})")
    return "\n".join(lines)


def _valid_keys_hint(location: tuple[Any, ...], schema: type[BaseModel]) -> str:
    model: type[BaseModel] = schema
    for part in location[:-1]:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return ""
        model = annotation
    return "; valid keys here: " + ", ".join(model.model_fields)
