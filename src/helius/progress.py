"""The one progress-bar helper: the CLI turns bars on, the library and tests leave them off."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from tqdm.auto import tqdm

_enabled = False


def set_enabled(enabled: bool) -> None:
    """Show progress bars (the CLI calls this; library code never does)."""
    global _enabled
    _enabled = enabled


def enabled() -> bool:
    return _enabled


def bar(iterable: Iterable[Any] | None = None, **kwargs: Any) -> tqdm:
    """A tqdm bar on stderr that is silent unless the CLI switched bars on.

    `disable=True` silences it further (e.g. on DDP ranks other than 0).
    """
    kwargs.setdefault("file", sys.stderr)
    kwargs.setdefault("dynamic_ncols", True)
    kwargs["disable"] = kwargs.get("disable", False) or not _enabled
    return tqdm(iterable, **kwargs)


def note(message: str) -> None:
    """A status line on stderr (e.g. a pipeline stage), shown only when bars are on."""
    if _enabled:
        tqdm.write(message, file=sys.stderr)
