"""`helius validate-data`: check that every audio file in a folder decodes, and how it sounds.

Per file: whether it decodes, duration, sample rate, channels, clipped % (samples at full
scale) and silent % (50 ms windows below the silence threshold). Writes nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from helius import progress
from helius.audio import io
from helius.data.parallel import parallel_map
from helius.data.prep import find_audio_files
from helius.errors import DataError, HeliusError

CLIP_LEVEL = 0.999  # |x| at or above this counts as clipped (16-bit full scale is 0.99997)
WINDOW_SECONDS = 0.05


@dataclass(frozen=True)
class FileCheck:
    file: str
    ok: bool
    reason: str = ""
    duration_seconds: float = 0.0
    sample_rate: int = 0
    channels: int = 0
    clipped_percent: float = 0.0
    silent_percent: float = 0.0


def validate_folder(
    folder: str | os.PathLike, silence_threshold_db: float = -60.0, workers: int | None = None
) -> tuple[list[FileCheck], list[str]]:
    """Check every audio file under `folder`; returns the sorted checks and the non-audio files."""
    root = Path(folder).resolve()
    if not root.is_dir():
        raise DataError(f"{folder} is not a folder")
    sources, ignored = find_audio_files(root)
    jobs = [(relpath, path, silence_threshold_db) for relpath, path in sources]
    checks = []
    with progress.bar(total=len(jobs), desc="validate", unit="file") as bar:
        for check in parallel_map(check_file, jobs, workers):
            checks.append(check)
            bar.update(1)
    return sorted(checks, key=lambda check: check.file), ignored


def check_file(job: tuple[str, Path, float]) -> FileCheck:
    """Decode one file at its own rate and measure it; never raises for bad input."""
    relpath, path, silence_threshold_db = job
    try:
        source, blocks = io.read_blocks(path, sample_rate=None, mono=False)
        window = max(1, round(WINDOW_SECONDS * source.sample_rate))
        frames = clipped = windows = silent_windows = 0
        carry = np.zeros((source.channels, 0), np.float32)
        for block in blocks:
            frames += block.shape[1]
            clipped += int(np.count_nonzero(np.abs(block) >= CLIP_LEVEL))
            carry = np.concatenate([carry, block], axis=1)
            usable = carry.shape[1] - carry.shape[1] % window
            if usable:
                power = np.square(carry[:, :usable], dtype=np.float64).mean(axis=0)
                window_db = 10 * np.log10(power.reshape(-1, window).mean(axis=1) + 1e-20)
                windows += len(window_db)
                silent_windows += int(np.count_nonzero(window_db < silence_threshold_db))
                carry = carry[:, usable:]
    except HeliusError as error:
        reason = str(error).removeprefix(f"{path}: ")
        return FileCheck(relpath, ok=False, reason=reason)
    if frames == 0:
        return FileCheck(relpath, ok=False, reason="no audio frames")
    return FileCheck(
        relpath,
        ok=True,
        duration_seconds=frames / source.sample_rate,
        sample_rate=source.sample_rate,
        channels=source.channels,
        clipped_percent=100.0 * clipped / (frames * source.channels),
        silent_percent=100.0 * silent_windows / windows if windows else 0.0,
    )


def format_table(checks: list[FileCheck], ignored: list[str]) -> str:
    """A table for people: one line per file, then a summary."""
    lines = [
        f"{'file':<40} {'status':<6} {'seconds':>8} {'Hz':>6} {'ch':>3} "
        f"{'clip %':>7} {'silent %':>8}"
    ]
    for check in checks:
        name = check.file if len(check.file) <= 40 else "…" + check.file[-39:]
        if check.ok:
            lines.append(
                f"{name:<40} {'ok':<6} {check.duration_seconds:>8.2f} "
                f"{check.sample_rate:>6} {check.channels:>3} "
                f"{check.clipped_percent:>7.2f} {check.silent_percent:>8.1f}"
            )
        else:
            lines.append(f"{name:<40} {'FAIL':<6} {check.reason}")
    lines.append(summarize(checks, ignored))
    return "\n".join(lines)


def summarize(checks: list[FileCheck], ignored: list[str]) -> str:
    good = [check for check in checks if check.ok]
    hours = sum(check.duration_seconds for check in good) / 3600
    rates = sorted({check.sample_rate for check in good})
    clipped = sum(1 for check in good if check.clipped_percent > 0.1)
    return (
        f"{len(good)} of {len(checks)} audio files decode ({hours:.2f} h; sample rates "
        f"{', '.join(map(str, rates)) or '-'}); {len(checks) - len(good)} failed; "
        f"{clipped} clip more than 0.1 % of samples; {len(ignored)} non-audio files ignored"
    )
