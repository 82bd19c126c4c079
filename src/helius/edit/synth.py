"""Synthetic raw/edit pairs from real music with known ground truth: an edit program (see
`programs`) rendered by splicing the raw track's frames, and the pointers, gains and ops it
implies, written in the layout `find_pairs` reads.

Layout under the output folder, per pair NAME:
  input/NAME_raw.wav              the raw track (22050 Hz mono, cropped to max_seconds)
  desired_output/NAME_edit.wav    the rendered edit
  pointer_sequences/NAME.npz      pointers (raw frame per edited frame, then STOP_TOKEN),
                                  ops, gains (per frame), hop_samples, sample_rate
  pointer_sequences/NAME.json     the program (steps in source seconds and beats), the
                                  settings and the seed
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from helius import progress
from helius.audio import io
from helius.audio.beats import BeatGrid, track_beats
from helius.edit.ops import write_pointer_sequence
from helius.edit.programs import BarLayout, EditProgram, SynthSettings, make_program
from helius.errors import DataError, HeliusError
from helius.files import atomic_write_text

GridFunction = Callable[[np.ndarray, int], BeatGrid]
PCM_STEPS = 32768.0  # the 16-bit WAV scale (as audio.io writes it)


@dataclass(frozen=True)
class EditPair:
    """One synthetic pair in memory: raw and edited audio (T,) float32 and the ground truth."""

    raw: np.ndarray
    edit: np.ndarray
    program: EditProgram
    layout: BarLayout
    pointers: np.ndarray
    gains: np.ndarray
    ops: np.ndarray
    settings: SynthSettings

    @property
    def jumps(self) -> int:
        return len(self.program.segments(self.layout)) - 1


@dataclass(frozen=True)
class SynthPair:
    """A pair written to disk: its name, the track it came from and what the program did."""

    index: int
    name: str
    source: Path
    kind: str
    seed: int
    raw_seconds: float
    edit_seconds: float
    jumps: int


@dataclass(frozen=True)
class SynthReport:
    output_dir: Path
    pairs: list[SynthPair]
    skipped: list[tuple[Path, str]]  # source tracks no pair came from, and why

    def summary(self) -> str:
        kinds = sorted({pair.kind for pair in self.pairs})
        counts = ", ".join(f"{sum(p.kind == k for p in self.pairs)} {k}" for k in kinds)
        lines = [f"{self.output_dir}: {len(self.pairs)} synthetic pairs ({counts or 'none'})"]
        lines += [
            f"  {p.name}: {p.kind}, {p.raw_seconds:.1f} s -> {p.edit_seconds:.1f} s, "
            f"{p.jumps} jumps (from {p.source.name}, seed {p.seed})"
            for p in self.pairs
        ]
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} track(s):")
            lines += [f"  {path}: {reason}" for path, reason in self.skipped]
        return "\n".join(lines)


def make_pair(raw: np.ndarray, grid: BeatGrid, settings: SynthSettings, seed: int) -> EditPair:
    """Draw a program for `raw` ((T,) at settings.sample_rate) on `grid` and render it."""
    raw = np.asarray(raw, dtype=np.float32).reshape(-1)
    hop = settings.hop_samples
    layout = BarLayout.from_grid(grid, len(raw) // hop, settings.sample_rate, hop)
    program = make_program(layout, settings, seed)
    pointers, gains, ops = program.ground_truth(layout)
    crossfade = round(settings.crossfade_ms * settings.sample_rate / 1000)
    edit = render(raw, program.segments(layout), gains, hop, crossfade)
    return EditPair(raw, edit, program, layout, pointers, gains, ops, settings)


def render(
    raw: np.ndarray,
    segments: list[tuple[int, int]],
    gains: np.ndarray,
    hop: int,
    crossfade_samples: int,
) -> np.ndarray:
    """Raw frame ranges spliced in order, an equal-power crossfade at every join, times the
    gain curve (linear from each frame's gain to the next one's; `gains` has one value per
    edited frame plus the STOP frame's)."""
    lengths = [(end - start) * hop for start, end in segments]
    out = np.zeros(sum(lengths), dtype=np.float64)
    joins = np.cumsum([0, *lengths])
    for (start, end), at in zip(segments, joins, strict=False):
        out[at : at + (end - start) * hop] = raw[start * hop : end * hop]
    for index in range(1, len(segments)):
        before, after = segments[index - 1], segments[index]
        sides = (before[1] * hop, after[0] * hop, lengths[index - 1], lengths[index])
        _crossfade(out, raw, int(joins[index]), *sides, crossfade_samples)
    position = np.arange(len(out)) / hop
    out *= np.interp(position, np.arange(len(gains)), gains)
    return out.astype(np.float32)


def _crossfade(
    out: np.ndarray,
    raw: np.ndarray,
    join: int,
    left_end: int,
    right_start: int,
    left_length: int,
    right_length: int,
    samples: int,
) -> None:
    """Blend the join at output sample `join` over `samples`, using the raw audio that runs on
    past the left segment's end and the raw audio just before the right segment's start, so
    the edit keeps its length and is untouched away from the join. Near the track's ends or a
    short segment the window shifts or shrinks."""
    # Each side of the window must exist in the raw track and stay within half its segment.
    before_limit = min(right_start, left_length // 2)
    after_limit = min(len(raw) - left_end, right_length // 2)
    before = min(samples // 2, before_limit)
    after = min(samples - before, after_limit)
    before = min(samples - after, before_limit)
    width = before + after
    if width == 0:
        return
    t = (np.arange(width) + 0.5) / width
    left = raw[left_end - before : left_end + after]
    right = raw[right_start - before : right_start + after]
    out[join - before : join + after] = left * np.cos(0.5 * np.pi * t) + right * np.sin(
        0.5 * np.pi * t
    )


def write_pair(pair: EditPair, output_dir: Path, name: str, metadata: dict) -> None:
    """Write one pair in the training-data layout, each file atomically."""
    settings = pair.settings
    sequences = output_dir / "pointer_sequences"
    write_pointer_sequence(
        sequences / f"{name}.npz",
        pair.pointers,
        pair.ops,
        pair.gains,
        settings.hop_samples,
        settings.sample_rate,
    )
    program = pair.program.to_json(pair.layout, settings.sample_rate, settings.hop_samples)
    record = {**metadata, "program": program, "settings": settings.model_dump(mode="json")}
    atomic_write_text(sequences / f"{name}.json", json.dumps(record, indent=1) + "\n")
    io.save(output_dir / "desired_output" / f"{name}_edit.wav", pair.edit, settings.sample_rate)
    # The raw file last: a pair is only seen as a pair (raw + edit) once all of it is written.
    io.save(output_dir / "input" / f"{name}_raw.wav", pair.raw, settings.sample_rate)


def load_raw(path: Path, settings: SynthSettings) -> np.ndarray:
    """A track as the raw side of a pair: mono at the editor's rate, cropped, and on the
    16-bit grid its WAV stores, so the written edit is exactly what the written raw implies."""
    _, blocks = io.read_blocks(path, settings.sample_rate, mono=True)
    limit = settings.max_seconds
    wanted = math.inf if limit is None else round(limit * settings.sample_rate)
    parts, have = [], 0
    for block in blocks:
        parts.append(block[0])
        have += block.shape[1]
        if have >= wanted:
            break  # stop decoding: the rest is cropped away
    raw = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    raw = raw if limit is None else raw[:wanted]
    return (np.clip(np.rint(raw * PCM_STEPS), -PCM_STEPS, PCM_STEPS - 1) / PCM_STEPS).astype(
        np.float32
    )


def synthesize_pairs(
    input_dir: Path,
    output_dir: Path,
    n: int,
    settings: SynthSettings | None = None,
    seed: int = 0,
    grid_for: GridFunction | None = None,
) -> SynthReport:
    """Make `n` synthetic pairs from the audio files under `input_dir`, spread round-robin
    over the usable tracks (pair i gets its own seed from `seed` and i, so several pairs from
    one track differ). `grid_for(audio, sample_rate)` finds a track's beats (None:
    `track_beats`). Tracks that cannot be read or have too few bars are reported, not used.
    """
    settings = settings or SynthSettings()
    grid_for = grid_for or _track_beats(settings)
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if not input_dir.is_dir():
        raise DataError(f"--input_dir {input_dir}: no such folder (give a folder of music)")
    tracks = sorted(
        path
        for path in input_dir.rglob("*")
        if path.is_file() and path.suffix.lower() in io.AUDIO_EXTENSIONS
    )
    if not tracks:
        raise DataError(f"{input_dir}: no audio files ({', '.join(sorted(io.AUDIO_EXTENSIONS))})")
    usable, skipped = _usable_tracks(tracks, n, settings, grid_for)
    if not usable:
        reasons = "; ".join(f"{path.name}: {reason}" for path, reason in skipped[:5])
        raise DataError(f"{input_dir}: no track can be edited ({reasons})")
    names = _track_names(input_dir, [path for path, _ in usable])
    pairs: list[SynthPair] = []
    bar = progress.bar(total=n, desc="synthetic pairs", unit="pair")
    # Pairs are made track by track so each track is decoded once more, not once per pair.
    for track, (path, grid) in enumerate(usable):
        raw = load_raw(path, settings)
        for index in range(track, n, len(usable)):
            pair_seed = int(np.random.SeedSequence([seed, index]).generate_state(1)[0])
            pair = make_pair(raw, grid, settings, pair_seed)
            name = f"{names[track]}_{index:04d}"
            metadata = {"name": name, "source": str(path), "seed": seed, "pair_seed": pair_seed}
            write_pair(pair, output_dir, name, metadata)
            seconds = len(raw) / settings.sample_rate, len(pair.edit) / settings.sample_rate
            pairs.append(
                SynthPair(index, name, path, pair.program.kind, pair_seed, *seconds, pair.jumps)
            )
            bar.update()
    bar.close()
    pairs.sort(key=lambda pair: pair.index)
    return SynthReport(output_dir, pairs, skipped)


def _track_beats(settings: SynthSettings) -> GridFunction:
    def grid_for(audio: np.ndarray, sample_rate: int) -> BeatGrid:
        return track_beats(audio, sample_rate, beats_per_bar=settings.beats_per_bar)

    return grid_for


def _usable_tracks(
    tracks: list[Path], n: int, settings: SynthSettings, grid_for: GridFunction
) -> tuple[list[tuple[Path, BeatGrid]], list[tuple[Path, str]]]:
    """Tracks in order with their beat grids, until there are `n` (more would get no pair),
    and the ones skipped on the way with the reason."""
    usable, skipped = [], []
    hop, rate = settings.hop_samples, settings.sample_rate
    for path in progress.bar(tracks, desc="beat tracking", unit="track"):
        if len(usable) == n:
            break
        try:
            raw = load_raw(path, settings)
            grid = grid_for(raw, rate)
        except HeliusError as error:
            skipped.append((path, str(error)))
            continue
        bars = BarLayout.from_grid(grid, len(raw) // hop, rate, hop).n_bars
        if bars < settings.min_bars:
            seconds = len(raw) / rate
            reason = f"{bars} whole bars in {seconds:.1f} s, programs need {settings.min_bars}"
            skipped.append((path, f"{reason} (min_bars)"))
            continue
        usable.append((path, grid))
    return usable, skipped


def _track_names(input_dir: Path, paths: list[Path]) -> list[str]:
    """File names without extension, made unique by their folder path where two clash, and
    safe as the NAME of NAME_raw.wav (no path separators)."""
    stems = [path.stem for path in paths]
    names = []
    for path, stem in zip(paths, stems, strict=True):
        if stems.count(stem) > 1:
            stem = "-".join(path.relative_to(input_dir).with_suffix("").parts)
        names.append(stem.replace(" ", "_"))
    return names
