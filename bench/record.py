"""What every HarmonicVAE bench result holds and where it goes: the machine, torch, the load
average at the start and the end (other work slows every figure), and the held-out audio."""

from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path

import torch


def write_result(results_dir: Path, name: str, load_start: tuple, **fields) -> Path:
    """`results_dir/<name>-<date>-<host>.json` with the machine's facts and `fields`."""
    now = datetime.datetime.now(datetime.timezone.utc)
    record = {
        "date": now.isoformat(timespec="seconds"),
        "host": platform.node(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "load_average_start": load_start,
        "load_average_end": os.getloadavg(),
        **fields,
    }
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{name}-{now:%Y-%m-%d}-{platform.node()}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def held_out(index: Path, sample_rate: int, length: int, count: int | None) -> torch.Tensor:
    """(N, 1, length) first crops of up to `count` segments of an index, evenly spread."""
    from helius.data.dataset import SegmentDataset

    dataset = SegmentDataset(index, sample_rate, length, 1, random_crop=False)
    total = len(dataset) if count is None else min(count, len(dataset))
    picks = torch.linspace(0, len(dataset) - 1, total).round().long().unique()
    return torch.stack([dataset[int(i)] for i in picks])
