"""Alignment of an edited track with its raw track: the raw frame each edited frame copies
(a pointer sequence), the gains and edit ops that go with it, a quality score per pair, and
the accuracy of an alignment against a known one.

The edit is taken to be raw segments played in any order (cuts, repeats, backward jumps), with
fades and short crossfades at the joins. Two passes find the segments:

1. Coarse: frame features (`features.frame_features`) pooled over blocks of `coarse_frames`
   frames; a Viterbi pass over (edit block, raw block) where moving on along the diagonal is
   free and a jump to any raw block costs `jump_penalty` (less where it leaves or lands on a
   beat of the raw track's beat grid, as edits tend to jump on beats).
2. Fine: each segment's offset (raw frame - edited frame) is chosen among the frame offsets
   its block offset allows by mean cost, then each join frame by the least summed cost of
   the two neighbouring offsets within one beat of the coarse join, on features of short
   windows (`features.join_features`) that barely reach across the join.

Quiet edited frames (a fade's last frames) are weighted down, so they neither steer the path
nor count in the quality. Gains come from the level of each edited frame against the raw frame
it copies, relative to the edit's usual level (`features.frame_gains`), and the ops from the
pointers and gains (`ops.ops_from_pointers`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from pydantic import Field

from helius import progress
from helius.audio import io
from helius.audio.beats import BeatGrid
from helius.config.base import Section
from helius.edit.features import (
    frame_features,
    frame_gains,
    frame_weights,
    join_features,
    jump_path,
    path_segments,
    refine_segments,
)
from helius.edit.ops import PAD_TOKEN, STOP_TOKEN, ops_from_pointers, write_pointer_sequence
from helius.edit.programs import EDIT_HOP_SAMPLES, EDIT_SAMPLE_RATE
from helius.errors import HeliusError
from helius.files import atomic_write_text

GridFunction = Callable[[np.ndarray, int], BeatGrid]
ALIGNED_DIR, REPORT_NAME = "aligned", "report.json"


class AlignSettings(Section):
    """Features, the path's costs and the quality measure of `align_pair`."""

    n_fft: int = Field(1024, ge=64, description="analysis window (samples)")
    n_mels: int = Field(64, ge=8, le=256)
    chroma_weight: float = Field(0.25, ge=0, le=1, description="chroma's share of the cosine")
    coarse_frames: int = Field(4, ge=1, le=64, description="frames per block of the coarse pass")
    jump_penalty: float = Field(2.0, gt=0, description="cost of a jump (block cost units)")
    beat_discount: float = Field(0.5, ge=0, lt=1, description="share of it waived on beats")
    quiet_db: float = Field(50.0, gt=10, description="frames this far under the loud ones: no say")
    match_cosine: float = Field(
        0.9, gt=0, le=1, description="an aligned frame this similar matches"
    )
    threshold: float = Field(0.8, ge=0, le=1, description="quality under this: poorly aligned")
    gain_tolerance: float = Field(
        0.01, ge=0, lt=0.5, description="level dips of less than this share are no fade"
    )


@dataclass(frozen=True)
class Alignment:
    """`pointers` (M + 1,) raw frame per edited frame then STOP_TOKEN; `gains` (relative to
    the edit's usual level, in [0, 1]) and `ops` of the same length; `similarity` (M,) cosine
    of each edited frame with its raw frame; `weights` (M,) how much each frame counted (0:
    too quiet to tell); `segments` (edit start, edit end, raw start) in frames; `quality` the
    share of counted frames whose similarity reaches the settings' match_cosine."""

    pointers: np.ndarray
    gains: np.ndarray
    ops: np.ndarray
    similarity: np.ndarray
    weights: np.ndarray
    segments: list[tuple[int, int, int]]
    quality: float
    mean_similarity: float
    sample_rate: int
    hop_samples: int

    @property
    def jumps(self) -> int:
        return max(len(self.segments) - 1, 0)


def align_pair(
    raw: np.ndarray,
    edit: np.ndarray,
    sample_rate: int = EDIT_SAMPLE_RATE,
    hop: int = EDIT_HOP_SAMPLES,
    settings: AlignSettings | None = None,
    grid: BeatGrid | None = None,
    grid_for: GridFunction | None = None,
) -> Alignment:
    """Align `edit` ((T,) mono) with `raw` ((T,) mono), both at `sample_rate`. The raw track's
    beat grid is `grid`, else `grid_for(raw, sample_rate)`, else none (jumps cost the same
    everywhere and joins are searched within 2 * coarse_frames + 2 frames)."""
    settings = settings or AlignSettings()
    raw = np.asarray(raw, np.float32).reshape(-1)
    edit = np.asarray(edit, np.float32).reshape(-1)
    if len(raw) < hop or len(edit) < hop:
        raise ValueError(f"raw ({len(raw)}) and edit ({len(edit)}) need at least {hop} samples")
    if grid is None and grid_for is not None:
        grid = grid_for(raw, sample_rate)
    options = (settings.n_fft, settings.n_mels, settings.chroma_weight)
    raw_features = frame_features(raw, sample_rate, hop, *options)
    edit_features = frame_features(edit, sample_rate, hop, *options)
    weights = frame_weights(edit_features, settings.quiet_db)
    beats = np.zeros(0, np.int64) if grid is None else grid.beat_frames(sample_rate, hop)
    beats = beats[(beats >= 0) & (beats < len(raw_features))]
    size = settings.coarse_frames
    costs = (settings.jump_penalty, settings.beat_discount)
    path = jump_path(edit_features, raw_features, weights, beats, size, *costs)
    segments = path_segments(path, size, len(edit_features))
    beat_frames = int(np.median(np.diff(beats))) if len(beats) > 2 else 0
    window = max(2 * size + 2, beat_frames)
    joins = (join_features(edit, hop), join_features(raw, hop))
    segments = refine_segments(segments, edit_features, raw_features, weights, size, window, joins)
    pointers = np.concatenate([np.arange(s, e) + offset for s, e, offset in segments])
    pointers = np.clip(pointers, 0, len(raw_features) - 1)
    similarity = np.sum(edit_features.vectors * raw_features.vectors[pointers], axis=1)
    counted = weights >= 0.5
    quality = float(np.mean(similarity[counted] >= settings.match_cosine)) if counted.any() else 0
    mean_similarity = float(np.mean(similarity[counted])) if counted.any() else 0.0
    gains = frame_gains(raw, edit, pointers, hop, settings.gain_tolerance)
    pointers = np.append(pointers, STOP_TOKEN).astype(np.int64)
    return Alignment(
        pointers=pointers,
        gains=gains,
        ops=ops_from_pointers(pointers, gains),
        similarity=similarity.astype(np.float32),
        weights=weights,
        segments=[(s, e, s + offset) for s, e, offset in segments],
        quality=quality,
        mean_similarity=mean_similarity,
        sample_rate=sample_rate,
        hop_samples=hop,
    )


def score_alignment(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """How close predicted pointers are to true ones (both raw frame per edited frame,
    STOP_TOKEN/PAD_TOKEN frames ignored): shares of the true edited frames whose predicted
    pointer is exact, within 1 and within 5 frames (frames the prediction lacks count as
    wrong), and the length error (predicted - true frames)."""
    predicted, truth = (_frames_of(np.asarray(p)) for p in (predicted, truth))
    common = min(len(predicted), len(truth))
    error = np.abs(predicted[:common] - truth[:common])
    total = max(len(truth), 1)
    return {
        "exact": float(np.sum(error == 0) / total),
        "within_1": float(np.sum(error <= 1) / total),
        "within_5": float(np.sum(error <= 5) / total),
        "length_error": int(len(predicted) - len(truth)),
    }


def _frames_of(pointers: np.ndarray) -> np.ndarray:
    pointers = pointers.astype(np.int64).reshape(-1)
    return pointers[(pointers != STOP_TOKEN) & (pointers != PAD_TOKEN)]


@dataclass(frozen=True)
class PairAlignment:
    """One aligned pair of a folder: where its pointers went and how well they fit; `truth`
    is `score_alignment` against the pair's pointer_sequences/NAME.npz when it has one."""

    name: str
    path: Path
    frames: int
    jumps: int
    quality: float
    mean_similarity: float
    beats: bool  # whether a beat grid of the raw track steered the jumps
    truth: dict | None


@dataclass(frozen=True)
class AlignReport:
    root: Path
    threshold: float
    pairs: list[PairAlignment]
    failed: list[tuple[str, str]]  # pair name, why it could not be aligned
    skipped: int  # files `find_pairs` left out
    report_path: Path

    @property
    def poorly_aligned(self) -> list[str]:
        return [pair.name for pair in self.pairs if pair.quality < self.threshold]

    def summary(self) -> str:
        poor = self.poorly_aligned
        lines = [
            f"{self.root}: {len(self.pairs)} pair(s) aligned into {ALIGNED_DIR}/, "
            f"{len(poor)} poorly (quality < {self.threshold:g}), {len(self.failed)} failed; "
            f"report {self.report_path.relative_to(self.root).as_posix()}"
        ]
        for pair in self.pairs:
            line = (
                f"  {pair.name}: quality {pair.quality:.3f} (mean cosine "
                f"{pair.mean_similarity:.3f}), {pair.frames} frames, {pair.jumps} jump(s)"
            )
            if pair.truth is not None:
                line += f", within 1 frame of pointer_sequences/: {pair.truth['within_1']:.1%}"
            lines.append(line + ("  POORLY ALIGNED" if pair.quality < self.threshold else ""))
        lines += [f"  {name}: failed: {reason}" for name, reason in self.failed]
        if self.skipped:
            lines.append(f"{self.skipped} file(s) not in a pair (see `helius edit pairs`)")
        return "\n".join(lines)


def align_folder(
    root: Path,
    threshold: float | None = None,
    settings: AlignSettings | None = None,
    grid_for: GridFunction | None = None,
    beats: bool = True,
) -> AlignReport:
    """Align every pair `find_pairs(root)` lists and write its pointers, ops and gains to
    root/aligned/NAME.npz (the keys and types of synth's pointer_sequences/NAME.npz), and
    root/aligned/report.json with each pair's quality and the pairs under `threshold` (None:
    the settings'). Aligned sequences go to aligned/, never to pointer_sequences/, so ground
    truth written there (by `helius edit synth`) is kept and scored against. With `beats`,
    `grid_for(raw, sample_rate)` (None: `track_beats`) gives the raw track's beat grid."""
    from helius.edit.pairs import find_pairs

    settings = settings or AlignSettings()
    threshold = settings.threshold if threshold is None else threshold
    root = Path(root)
    found = find_pairs(root)
    grid_for = grid_for or _track_beats
    rate, hop = EDIT_SAMPLE_RATE, EDIT_HOP_SAMPLES
    rows, failed = [], []
    for pair in progress.bar(found.pairs, desc="aligning", unit="pair"):
        try:
            raw = io.load(pair.raw, rate, mono=True)[0][0]
            edit = io.load(pair.edit, rate, mono=True)[0][0]
        except HeliusError as error:
            failed.append((pair.name, str(error)))
            continue
        grid = None
        if beats:
            try:
                grid = grid_for(raw, rate)
            except HeliusError:
                grid = None  # no beats to track: jumps cost the same everywhere
        alignment = align_pair(raw, edit, rate, hop, settings, grid=grid)
        path = root / ALIGNED_DIR / f"{pair.name}.npz"
        write_alignment(path, alignment)
        truth = _truth_score(pair.pointers, alignment)
        frames = len(alignment.pointers) - 1
        rows.append(
            PairAlignment(
                pair.name,
                path,
                frames,
                alignment.jumps,
                alignment.quality,
                alignment.mean_similarity,
                grid is not None,
                truth,
            )
        )
    report_path = root / ALIGNED_DIR / REPORT_NAME
    report = AlignReport(root, threshold, rows, failed, len(found.skipped), report_path)
    record = {
        "threshold": threshold,
        "settings": settings.model_dump(mode="json"),
        "pairs": [{**asdict(row), "path": row.path.relative_to(root).as_posix()} for row in rows],
        "poorly_aligned": report.poorly_aligned,
        "failed": [{"name": name, "reason": reason} for name, reason in failed],
    }
    atomic_write_text(report_path, json.dumps(record, indent=1) + "\n")
    return report


def write_alignment(path: Path, alignment: Alignment) -> None:
    """An alignment as a pointer-sequence file (synth's keys), written atomically."""
    write_pointer_sequence(
        path,
        alignment.pointers,
        alignment.ops,
        alignment.gains,
        alignment.hop_samples,
        alignment.sample_rate,
    )


def _track_beats(audio: np.ndarray, sample_rate: int) -> BeatGrid:
    from helius.audio.beats import track_beats

    return track_beats(audio, sample_rate)


def _truth_score(path: Path | None, alignment: Alignment) -> dict | None:
    """`score_alignment` against a pointer file, None without one or when it cannot count
    (unreadable, or another hop or rate)."""
    if path is None:
        return None
    try:
        with np.load(path) as truth:
            pointers = truth["pointers"]
            same_frames = (
                int(truth["hop_samples"]) == alignment.hop_samples
                and int(truth["sample_rate"]) == alignment.sample_rate
            )
    except (OSError, KeyError, ValueError):
        return None
    return score_alignment(alignment.pointers, pointers) if same_frames else None
