"""Seeded procedural audio for demos and tests: drum one-shots, musical textures, a demo data set.

Every sound comes from an explicit numpy Generator (or seed) and is returned as float32 mono
audio in [-1, 1] with a dict of the JSON-serialisable parameters that generated it. Keyword
overrides set any drawn parameter, e.g. ``make_oneshot("snare", rng, brightness_hz=4000.0)``.
The voices live in `drums.py` and `textures.py` beside this file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from helius.audio.io import save
from helius.audio.synth.common import RngLike, Sound
from helius.audio.synth.drums import make_clap, make_hat, make_kick, make_snare, make_tom
from helius.audio.synth.textures import make_fm, make_noise_sweep, make_pad, make_pluck
from helius.files import atomic_write_text

__all__ = [
    "ONESHOT_KINDS",
    "TEXTURE_KINDS",
    "DemoDataset",
    "make_clap",
    "make_fm",
    "make_hat",
    "make_kick",
    "make_noise_sweep",
    "make_oneshot",
    "make_pad",
    "make_pluck",
    "make_snare",
    "make_texture",
    "make_tom",
    "sound_rng",
    "write_demo_dataset",
]

_ONESHOTS: dict[str, Callable[..., Sound]] = {
    "kick": make_kick,
    "snare": make_snare,
    "hat": make_hat,
    "tom": make_tom,
    "clap": make_clap,
}
_TEXTURES: dict[str, Callable[..., Sound]] = {
    "pluck": make_pluck,
    "fm": make_fm,
    "pad": make_pad,
    "noise_sweep": make_noise_sweep,
}
ONESHOT_KINDS: tuple[str, ...] = tuple(_ONESHOTS)
TEXTURE_KINDS: tuple[str, ...] = tuple(_TEXTURES)
_FAMILIES = {"oneshot": (0, "oneshots", _ONESHOTS), "texture": (1, "textures", _TEXTURES)}


def _voice(table: dict[str, Callable[..., Sound]], family: str, kind: str) -> Callable[..., Sound]:
    if kind not in table:
        raise ValueError(f"unknown {family} kind {kind!r}; valid kinds: {', '.join(table)}")
    return table[kind]


def make_oneshot(
    kind: str,
    rng: RngLike,
    sample_rate: int = 44100,
    duration_seconds: float = 1.0,
    **overrides: Any,
) -> Sound:
    """A drum one-shot of `kind` (see ONESHOT_KINDS), exactly `duration_seconds` long.

    Drawn parameters: pitch_hz, decay_seconds (time to fall 60 dB), brightness_hz (the
    kind's filter corner), noise_amount (0 = all tone, 1 = all noise, by RMS), gain_db (peak
    dBFS), plus a few kind-specific ones; any of them can be set through `overrides`.
    """
    return _voice(_ONESHOTS, "oneshot", kind)(rng, sample_rate, duration_seconds, **overrides)


def make_texture(
    kind: str,
    rng: RngLike,
    sample_rate: int = 44100,
    duration_seconds: float = 10.0,
    **overrides: Any,
) -> Sound:
    """A continuous texture of `kind` (see TEXTURE_KINDS), exactly `duration_seconds` long.

    Note-based kinds record scale, root_midi, tempo_bpm, notes (MIDI) and onsets; every kind
    records brightness_hz and gain_db. Scalar parameters can be set through `overrides`.
    """
    return _voice(_TEXTURES, "texture", kind)(rng, sample_rate, duration_seconds, **overrides)


def sound_rng(seed: int, family: str, index: int) -> np.random.Generator:
    """The generator of sound `index` of `family` in a demo data set of `seed`.

    It depends on nothing else, so one file's content does not change with the number of
    files generated; the family number keeps one-shot 0 and texture 0 on different streams.
    """
    if family not in _FAMILIES:
        raise ValueError(f"family must be one of {', '.join(_FAMILIES)}, not {family!r}")
    return np.random.default_rng([seed, _FAMILIES[family][0], index])


@dataclass(frozen=True)
class DemoDataset:
    """What `write_demo_dataset` wrote: WAV files in generation order and the records index."""

    out_dir: Path
    files: list[Path]
    params_path: Path
    records: list[dict[str, Any]]


def write_demo_dataset(
    out_dir: str | os.PathLike,
    n_oneshots: int = 200,
    n_textures: int = 16,
    seed: int = 0,
    sample_rate: int = 44100,
    oneshot_seconds: float = 1.0,
    texture_seconds: float = 10.0,
    progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None,
) -> DemoDataset:
    """Write a labelled demo set: oneshots/ and textures/ of 16-bit WAVs with JSON sidecars.

    Files are ``<family folder>/<kind>_<index:04d>.wav`` with kinds taken in turn, each beside
    a ``.json`` record ``{file, kind, family, sample_rate, params}``; ``params.jsonl`` holds
    the same records, one per line. Every file is written atomically and re-running writes
    the same bytes. `progress` may wrap the sequence of sounds (e.g. a tqdm factory).
    """
    if n_oneshots < 0 or n_textures < 0:
        raise ValueError("n_oneshots and n_textures must not be negative")
    out_dir = Path(out_dir)
    jobs = [("oneshot", ONESHOT_KINDS[i % len(ONESHOT_KINDS)], i) for i in range(n_oneshots)]
    jobs += [("texture", TEXTURE_KINDS[i % len(TEXTURE_KINDS)], i) for i in range(n_textures)]
    files, records = [], []
    for family, kind, index in progress(jobs) if progress is not None else jobs:
        _, folder, table = _FAMILIES[family]
        seconds = oneshot_seconds if family == "oneshot" else texture_seconds
        audio, params = table[kind](sound_rng(seed, family, index), sample_rate, seconds)
        relpath = f"{folder}/{kind}_{index:04d}.wav"
        path = out_dir / relpath
        save(path, audio, sample_rate, subtype="PCM_16")
        record = {
            "file": relpath,
            "kind": kind,
            "family": family,
            "sample_rate": sample_rate,
            "params": params,
        }
        atomic_write_text(path.with_suffix(".json"), json.dumps(record, indent=2) + "\n")
        files.append(path)
        records.append(record)
    params_path = out_dir / "params.jsonl"
    atomic_write_text(params_path, "".join(json.dumps(record) + "\n" for record in records))
    return DemoDataset(out_dir, files, params_path, records)
