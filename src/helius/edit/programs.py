"""Edit programs for synthetic pairs: seeded lists of bar-level steps (trims, bar and phrase
cuts, loops, phrase swaps, fades) on a track's beat grid, and the ground truth they imply.

A program's result is a playlist of units in output order: unit -1 (HEAD) is the audio before
the first downbeat, units 0..n_bars-1 are the bars (downbeat to downbeat) and unit n_bars is
the tail after the last downbeat. Every jump in an edit therefore lands on a downbeat.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import Field, ValidationInfo, field_validator, model_validator

from helius.audio.beats import BeatGrid
from helius.config.base import Section
from helius.edit.ops import FADE_STEP, STOP_TOKEN, ops_from_pointers

EDIT_SAMPLE_RATE = 22050  # the editor's audio rate (the seed's)
EDIT_HOP_SAMPLES = 256  # samples per editor frame (the seed's hop_length)
PROGRAM_KINDS = ("radio_edit", "extended", "reorder", "trim", "fade")
DEFAULT_MIX = {"radio_edit": 1.0, "extended": 1.0, "reorder": 0.5, "trim": 1.0, "fade": 0.5}
HEAD = -1


class SynthSettings(Section):
    """The mix of program kinds and the ranges their random choices are drawn from."""

    programs: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_MIX),
        description=f"weight per program kind ({', '.join(PROGRAM_KINDS)}); unlisted: 0",
    )
    crossfade_ms: float = Field(10.0, ge=0, le=50, description="equal-power crossfade per jump")
    max_seconds: float | None = Field(120.0, gt=0, description="crop raw tracks (None: whole)")
    beats_per_bar: int = Field(4, ge=1)
    bars_per_phrase: int = Field(4, ge=1)
    min_bars: int = Field(8, ge=2, description="tracks with fewer whole bars are skipped")
    radio_fraction: tuple[float, float] = Field(
        (0.5, 0.8), description="radio edit: target length as a share of the raw track"
    )
    loop_repeats: tuple[int, int] = Field((1, 3), description="extra passes of a looped region")
    trim_bars: tuple[int, int] = Field((1, 4), description="bars an intro/outro trim removes")
    fade_in_seconds: tuple[float, float] = (0.5, 3.0)
    fade_out_seconds: tuple[float, float] = (2.0, 8.0)
    sample_rate: int = Field(EDIT_SAMPLE_RATE, gt=0)
    hop_samples: int = Field(EDIT_HOP_SAMPLES, gt=0)

    @field_validator("programs")
    @classmethod
    def _known_kinds(cls, programs: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(programs) - set(PROGRAM_KINDS))
        if unknown:
            raise ValueError(f"unknown kind(s) {unknown}; the kinds are {list(PROGRAM_KINDS)}")
        if any(weight < 0 for weight in programs.values()) or sum(programs.values()) <= 0:
            raise ValueError("weights must be >= 0, at least one of them > 0")
        return programs

    @field_validator("min_bars")
    @classmethod
    def _two_phrases(cls, min_bars: int, info: ValidationInfo) -> int:
        phrase = info.data.get("bars_per_phrase", 4)
        if min_bars < 2 * phrase:
            raise ValueError(f"must be at least two phrases ({2 * phrase} bars): a swap needs two")
        return min_bars

    @field_validator(
        "radio_fraction", "loop_repeats", "trim_bars", "fade_in_seconds", "fade_out_seconds"
    )
    @classmethod
    def _low_high(cls, bounds: tuple[float, float]) -> tuple[float, float]:
        if not 0 < bounds[0] <= bounds[1]:
            raise ValueError(f"expected (low, high) with 0 < low <= high, got {bounds}")
        return bounds

    @model_validator(mode="after")
    def _fit(self) -> SynthSettings:
        # A longer fade changes the gain by less than FADE_STEP per frame: no FADE op labels.
        longest = (1 / FADE_STEP - 1) * self.hop_samples / self.sample_rate
        if max(self.fade_in_seconds[1], self.fade_out_seconds[1]) > longest:
            raise ValueError(f"fades can be at most {longest:.1f} s long")
        return self


@dataclass(frozen=True)
class BarLayout:
    """Where a track's bars lie in editor frames: `downbeats` are the downbeat frames within
    the track's `n_frames` whole frames; bar b spans downbeats[b]..downbeats[b + 1]."""

    grid: BeatGrid
    downbeats: np.ndarray
    n_frames: int

    @classmethod
    def from_grid(cls, grid: BeatGrid, n_frames: int, sample_rate: int, hop: int) -> BarLayout:
        frames = grid.downbeat_frames(sample_rate, hop)
        frames = frames[(frames >= 0) & (frames <= n_frames)]
        if np.any(np.diff(frames) <= 0):
            raise ValueError("two downbeats fall in the same frame; the grid is too dense")
        return cls(grid, frames, n_frames)

    @property
    def n_bars(self) -> int:
        return max(len(self.downbeats) - 1, 0)

    def span(self, unit: int) -> tuple[int, int]:
        """Source frames [start, end) of a playlist unit (HEAD, a bar or the tail)."""
        if unit == HEAD:
            return 0, int(self.downbeats[0])
        if unit == self.n_bars:
            return int(self.downbeats[-1]), self.n_frames
        return int(self.downbeats[unit]), int(self.downbeats[unit + 1])

    def frames_of(self, units: list[int]) -> int:
        return sum(end - start for start, end in map(self.span, units))


@dataclass(frozen=True)
class Step:
    """One edit step. Bar steps name source bars [bars[0], bars[1]): the bars a trim or cut
    removes, a loop repeats or a swap moves; fades (bars None) name output frames [frames[0],
    frames[1]). `detail` holds the rest (repeats of a loop, the other phrase of a swap)."""

    op: str
    bars: tuple[int, int] | None = None
    frames: tuple[int, int] | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EditProgram:
    """A program's result: units in output order and the fade lengths, with the steps and the
    seed that made them."""

    kind: str
    seed: int
    steps: tuple[Step, ...]
    playlist: tuple[int, ...]
    fade_in_frames: int
    fade_out_frames: int

    def segments(self, layout: BarLayout) -> list[tuple[int, int]]:
        """Source frame ranges in output order, contiguous units merged (a jump between each)."""
        merged: list[list[int]] = []
        for start, end in map(layout.span, self.playlist):
            if end == start:
                continue
            if merged and merged[-1][1] == start:
                merged[-1][1] = end
            else:
                merged.append([start, end])
        return [(start, end) for start, end in merged]

    def ground_truth(self, layout: BarLayout) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(pointers ending in STOP_TOKEN, gains, ops), all of one length.

        Gain k is the gain at the first sample of edited frame k (the audio's gain runs
        linearly from one frame's to the next); a fade in rises from 0 at frame 0, a fade out
        falls to 0 at the STOP frame, so exactly the fade's frames are labelled FADE_IN/OUT.
        """
        copied = [np.arange(start, end) for start, end in self.segments(layout)]
        pointers = np.concatenate([*copied, [STOP_TOKEN]]).astype(np.int64)
        gains = np.ones(len(pointers))
        fade_in, fade_out = self.fade_in_frames, self.fade_out_frames
        if fade_in:
            gains[:fade_in] = np.arange(fade_in) / fade_in
        if fade_out:
            gains[-fade_out - 1 :] = np.arange(fade_out, -1, -1) / fade_out
        gains = gains.astype(np.float32)
        return pointers, gains, ops_from_pointers(pointers, gains)

    def to_json(self, layout: BarLayout, sample_rate: int, hop: int) -> dict[str, Any]:
        """The program as plain data: each step with its source bars, beats (grid indices)
        and seconds (fades: output frames and seconds, and the source they fall on)."""
        grid = layout.grid
        seconds_per_frame = hop / sample_rate
        pointers = self.ground_truth(layout)[0][:-1]
        beat_index = np.arange(len(grid.beats_seconds))

        def place(step: Step) -> dict[str, Any]:
            if step.bars is not None:
                first, end = step.bars
                start_frame, end_frame = layout.span(first)[0], layout.span(end - 1)[1]
                beat = grid.first_downbeat
                return {
                    "source_bars": [first, end],
                    "source_beats": [beat + first * grid.beats_per_bar,
                                     beat + end * grid.beats_per_bar],
                    "source_seconds": [start_frame * seconds_per_frame,
                                       end_frame * seconds_per_frame],
                }  # fmt: skip
            assert step.frames is not None
            first, end = step.frames
            source = np.array([pointers[first], pointers[end - 1] + 1]) * seconds_per_frame
            return {
                "output_frames": [first, end],
                "output_seconds": [first * seconds_per_frame, end * seconds_per_frame],
                "source_seconds": source.tolist(),
                "source_beats": np.interp(source, grid.beats_seconds, beat_index).tolist(),
            }

        return {
            "kind": self.kind,
            "seed": self.seed,
            "steps": [{"op": step.op, **place(step), **step.detail} for step in self.steps],
            "playlist": list(self.playlist),
            "segments_frames": [list(segment) for segment in self.segments(layout)],
            "fade_in_frames": self.fade_in_frames,
            "fade_out_frames": self.fade_out_frames,
            "n_bars": layout.n_bars,
            "downbeat_frames": layout.downbeats.tolist(),
            "grid": {
                "beats_seconds": grid.beats_seconds.tolist(),
                "first_downbeat": grid.first_downbeat,
                "beats_per_bar": grid.beats_per_bar,
            },
        }


def make_program(layout: BarLayout, settings: SynthSettings, seed: int) -> EditProgram:
    """A program of a kind drawn from `settings.programs`, its choices drawn from `seed`."""
    if layout.n_bars < settings.min_bars:
        raise ValueError(f"{layout.n_bars} whole bars, programs need {settings.min_bars}")
    rng = np.random.default_rng(seed)
    kinds = [kind for kind in PROGRAM_KINDS if settings.programs.get(kind, 0) > 0]
    weights = np.array([settings.programs[kind] for kind in kinds])
    kind = kinds[rng.choice(len(kinds), p=weights / weights.sum())]
    draft = _Draft(layout, settings, rng)
    _DRAW[kind](draft)
    total = layout.frames_of(draft.playlist)
    # Fades never overlap each other and leave the middle of the edit at full gain.
    fade_in, fade_out = (min(frames, total // 3) for frames in (draft.fade_in, draft.fade_out))
    steps = list(draft.steps)
    if fade_in:
        steps.append(Step("fade_in", frames=(0, fade_in)))
    if fade_out:
        steps.append(Step("fade_out", frames=(total - fade_out, total)))
    return EditProgram(kind, seed, tuple(steps), tuple(draft.playlist), fade_in, fade_out)


class _Draft:
    """A program while its steps are drawn: the playlist so far and the steps that made it."""

    def __init__(self, layout: BarLayout, settings: SynthSettings, rng: np.random.Generator):
        self.layout, self.settings, self.rng = layout, settings, rng
        self.playlist = [HEAD, *range(layout.n_bars), layout.n_bars]
        self.steps: list[Step] = []
        self.fade_in = self.fade_out = 0
        self.phrase = settings.bars_per_phrase

    def bars_left(self) -> list[int]:
        return [unit for unit in self.playlist if 0 <= unit < self.layout.n_bars]

    def whole_phrases(self) -> list[int]:
        """Phrases whose bars all still play, in order."""
        present, size = set(self.bars_left()), self.phrase
        count = self.layout.n_bars // size
        return [p for p in range(count) if present.issuperset(range(p * size, (p + 1) * size))]

    def draw_int(self, bounds: tuple[int, int], at_most: int) -> int:
        return int(self.rng.integers(bounds[0], max(min(bounds[1], at_most), bounds[0]) + 1))

    def fade_frames(self, seconds: tuple[float, float]) -> int:
        length = self.rng.uniform(*seconds)
        return max(2, round(length * self.settings.sample_rate / self.settings.hop_samples))

    def cut(self, op: str, first: int, end: int) -> None:
        self.playlist = [unit for unit in self.playlist if not first <= unit < end]
        self.steps.append(Step(op, (first, end)))

    def intro_trim(self) -> None:
        """Start at a later bar (the audio before it goes), fading in."""
        bars = self.bars_left()
        count = self.draw_int(self.settings.trim_bars, len(bars) - 2 * self.phrase)
        self.playlist = [unit for unit in self.playlist if unit >= bars[count]]
        self.steps.append(Step("intro_trim", (bars[0], bars[count])))
        self.fade_in = self.fade_frames(self.settings.fade_in_seconds)

    def outro_trim(self) -> None:
        """End at an earlier bar line, fading out into it."""
        bars = self.bars_left()
        count = self.draw_int(self.settings.trim_bars, len(bars) - 2 * self.phrase)
        self.playlist = [unit for unit in self.playlist if unit < bars[-count]]
        self.steps.append(Step("outro_trim", (bars[-count], bars[-1] + 1)))
        self.fade_out = self.fade_frames(self.settings.fade_out_seconds)


def _radio_edit(draft: _Draft) -> None:
    """Maybe trim, then cut interior phrases, then bars, down to a target length."""
    layout, rng, size = draft.layout, draft.rng, draft.phrase
    target = rng.uniform(*draft.settings.radio_fraction) * layout.frames_of(draft.playlist)
    if rng.random() < 0.5:
        draft.intro_trim()
    if rng.random() < 0.7:
        draft.outro_trim()
    for p in rng.permutation(draft.whole_phrases()[1:-1]).tolist():
        phrase_frames = layout.frames_of(list(range(p * size, (p + 1) * size)))
        if layout.frames_of(draft.playlist) - target < phrase_frames:
            break  # a bar or two closes what is left without overshooting by a phrase
        draft.cut("cut_phrase", p * size, (p + 1) * size)
    for bar in rng.permutation(draft.bars_left()[size:-size]).tolist():
        if layout.frames_of(draft.playlist) <= target:
            break
        draft.cut("cut_bar", bar, bar + 1)
    if not draft.steps:
        draft.outro_trim()


def _extended(draft: _Draft) -> None:
    """Loop one or two bars or phrases, each played 1 + repeats times in a row."""
    rng, size = draft.rng, draft.phrase
    looped: set[int] = set()
    low, high = draft.settings.loop_repeats
    for _ in range(int(rng.integers(1, 3))):
        if rng.random() < 0.5:
            op, options = "loop_phrase", [(p * size, (p + 1) * size) for p in draft.whole_phrases()]
        else:
            op, options = "loop_bar", [(bar, bar + 1) for bar in draft.bars_left()]
        options = [(first, end) for first, end in options if looped.isdisjoint(range(first, end))]
        first, end = options[rng.integers(len(options))]
        repeats = int(rng.integers(low, high + 1))
        after = draft.playlist.index(first) + (end - first)
        draft.playlist[after:after] = list(range(first, end)) * repeats
        looped.update(range(first, end))
        draft.steps.append(Step(op, (first, end), detail={"repeats": repeats}))


def _reorder(draft: _Draft) -> None:
    """Swap two whole phrases."""
    size = draft.phrase
    p, q = sorted(draft.rng.choice(draft.whole_phrases(), size=2, replace=False).tolist())
    i, j = draft.playlist.index(p * size), draft.playlist.index(q * size)
    draft.playlist[i : i + size], draft.playlist[j : j + size] = (
        draft.playlist[j : j + size],
        draft.playlist[i : i + size],
    )
    other = [q * size, (q + 1) * size]
    draft.steps.append(Step("swap_phrases", (p * size, (p + 1) * size), detail={"with": other}))


def _trim(draft: _Draft) -> None:
    """An intro trim, an outro trim or both."""
    choice = int(draft.rng.integers(3))  # 0: the start only, 1: the end only, 2: both
    if choice != 1:
        draft.intro_trim()
    if choice != 0:
        draft.outro_trim()


def _fade(draft: _Draft) -> None:
    """A fade in, a fade out or both, on the whole track."""
    choice = int(draft.rng.integers(3))
    if choice != 1:
        draft.fade_in = draft.fade_frames(draft.settings.fade_in_seconds)
    if choice != 0:
        draft.fade_out = draft.fade_frames(draft.settings.fade_out_seconds)


_DRAW = {
    "radio_edit": _radio_edit,
    "extended": _extended,
    "reorder": _reorder,
    "trim": _trim,
    "fade": _fade,
}
