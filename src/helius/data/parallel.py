"""Run one function over many files on a pool of worker processes, with one progress bar."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def default_workers() -> int:
    """All the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS and Windows have no sched_getaffinity
        return max(1, os.cpu_count() or 1)


def parallel_map(
    function: Callable[[Item], Result], items: Iterable[Item], workers: int | None = None
) -> Iterator[Result]:
    """Yield function(item) for every item, in completion order, on `workers` processes.

    One worker runs in this process (no pickling, easy to debug). The function must be a
    module-level function and never raise for a bad item: it reports the problem in its result.
    """
    items = list(items)
    workers = min(workers or default_workers(), max(1, len(items)))
    if workers == 1:
        yield from map(function, items)
        return
    pool: Any = multiprocessing.get_context().Pool(workers)
    try:
        yield from pool.imap_unordered(function, items, chunksize=1)
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()
