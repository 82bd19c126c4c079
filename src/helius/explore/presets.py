"""Named latent presets: one JSON file each in a folder beside the model, safe to share.

Names are checked so that a preset file can never land outside its folder, every write is
atomic (a reader sees the old preset or the new one, never half of one), and writers hold a
thread lock plus an OS file lock so threads and processes can save concurrently.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from helius.errors import ConfigError
from helius.files import atomic_write_text

try:  # POSIX; elsewhere the thread lock alone guards one process
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["PRESET_FORMAT", "PresetError", "PresetStore", "check_preset_name"]

PRESET_FORMAT = "helius-preset-1"
MAX_NAME_LENGTH = 64
_NAME = re.compile(r"[A-Za-z0-9 _.\-]+")
_SUFFIX = ".json"
_LOCK_FILE = ".presets.lock"  # a leading dot: never a valid preset name, never listed


class PresetError(ConfigError):
    """A preset name is not allowed, or a preset is missing, taken or unreadable."""


def check_preset_name(name: str) -> str:
    """`name` if it is a valid preset name, else PresetError saying what is allowed."""
    rule = (
        f"use 1 to {MAX_NAME_LENGTH} letters, digits, spaces, '-', '_' or '.', "
        "not starting with '.'"
    )
    if not isinstance(name, str) or not name:
        raise PresetError(f"a preset needs a name: {rule}")
    if len(name) > MAX_NAME_LENGTH:
        raise PresetError(f"preset name {name[:20]!r}... is {len(name)} characters long: {rule}")
    if name.startswith(".") or not _NAME.fullmatch(name):
        raise PresetError(f"preset name {name!r} is not allowed: {rule}")
    return name


class PresetStore:
    """The presets in `folder` (created on the first save)."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self._lock = threading.Lock()

    @classmethod
    def beside(cls, checkpoint_path: str | os.PathLike) -> PresetStore:
        """The store of a model: `<checkpoint stem>_presets/` next to the checkpoint."""
        checkpoint_path = Path(checkpoint_path)
        return cls(checkpoint_path.with_name(f"{checkpoint_path.stem}_presets"))

    def path_of(self, name: str) -> Path:
        return self.folder / f"{check_preset_name(name)}{_SUFFIX}"

    def list(self) -> list[str]:
        """Names of the saved presets, sorted."""
        if not self.folder.is_dir():
            return []
        names = []
        for path in self.folder.glob(f"*{_SUFFIX}"):
            name = path.name[: -len(_SUFFIX)]
            with contextlib.suppress(PresetError):
                names.append(check_preset_name(name))
        return sorted(names)

    def save(self, name: str, latent: torch.Tensor, meta: dict[str, Any] | None = None) -> Path:
        """Write (or overwrite) preset `name`: the latent as nested lists plus `meta`."""
        path = self.path_of(name)
        latent = torch.as_tensor(latent).detach().cpu().float()
        if not torch.isfinite(latent).all():
            raise PresetError(f"preset {name!r}: the latent contains NaN or infinity")
        record = {
            "format": PRESET_FORMAT,
            "shape": list(latent.shape),
            "latent": latent.tolist(),
            "meta": dict(meta or {}),
        }
        try:
            text = json.dumps(record, indent=1, allow_nan=False) + "\n"
        except (TypeError, ValueError) as error:
            raise PresetError(f"preset {name!r}: meta must be plain JSON data ({error})") from None
        with self._writing():
            atomic_write_text(path, text)
        return path

    def load(self, name: str) -> tuple[torch.Tensor, dict[str, Any]]:
        """(latent tensor, meta) of preset `name`."""
        path = self.path_of(name)
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise PresetError(f"no preset named {name!r} in {self.folder}") from None
        except (OSError, ValueError) as error:
            raise PresetError(f"preset file {path} cannot be read: {error}") from None
        if not isinstance(record, dict) or record.get("format") != PRESET_FORMAT:
            raise PresetError(f"{path} is not a Helius preset (no '{PRESET_FORMAT}' marker)")
        try:
            latent = torch.tensor(record["latent"], dtype=torch.float32)
            latent = latent.reshape(record.get("shape", list(latent.shape)))
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise PresetError(f"preset file {path} holds no valid latent ({error})") from None
        meta = record.get("meta") or {}
        return latent, meta if isinstance(meta, dict) else {"value": meta}

    def rename(self, old: str, new: str) -> Path:
        """Give preset `old` the name `new` (which must not be taken)."""
        source, target = self.path_of(old), self.path_of(new)
        with self._writing():
            if not source.is_file():
                raise PresetError(f"no preset named {old!r} in {self.folder}")
            if target.exists() and source != target:
                raise PresetError(f"a preset named {new!r} already exists; delete it first")
            os.replace(source, target)
        return target

    def delete(self, name: str) -> None:
        """Remove preset `name`."""
        path = self.path_of(name)
        with self._writing():
            try:
                path.unlink()
            except FileNotFoundError:
                raise PresetError(f"no preset named {name!r} in {self.folder}") from None

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Hold this store's thread lock and the folder's OS lock (other stores, processes)."""
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            if fcntl is None:  # pragma: no cover - Windows
                yield
                return
            with open(self.folder / _LOCK_FILE, "a+b") as lock_file:
                fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)
