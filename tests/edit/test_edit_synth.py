"""Synthetic edit pairs (`helius.edit.synth`): on a generated track with an exact beat grid,
every program kind's edit is the raw audio at its pointers (times its gains), its jumps land on
bar lines, its loops, cuts and swaps move the bars the program names, its ops say so, the
files on disk agree, and a seed decides everything."""

from __future__ import annotations

import itertools
import json
from functools import cache

import numpy as np
import pytest
import soundfile as sf
from helpers import write

from helius.audio.beats import BeatGrid
from helius.cli import main
from helius.edit import synth
from helius.edit.ops import STOP_TOKEN, EditOp
from helius.edit.pairs import find_pairs
from helius.edit.programs import PROGRAM_KINDS, SynthSettings
from helius.edit.synth import make_pair, render, synthesize_pairs

RATE, HOP = 22050, 256
BPM, PICKUP_SECONDS = 120.0, 0.37  # a bar is 2 s = 172.27 frames: bar lines fall between frames
BARS = 24
SEEDS = (0, 1, 2)
C, LOOP_START, LOOP_END, SKIP, FADE_IN, FADE_OUT, STOP = (int(op) for op in EditOp)


def grid_of(seconds: float) -> BeatGrid:
    """Beats every 0.5 s from PICKUP_SECONDS; beat 1 is the first downbeat (beat 0 a pickup)."""
    return BeatGrid(np.arange(PICKUP_SECONDS, seconds, 60 / BPM), first_downbeat=1)


def music(bars: int = BARS, rate: int = RATE, clicks: bool = True) -> np.ndarray:
    """(T,) a tone per bar (a new pitch on each bar line) and a click on every beat."""
    seconds = PICKUP_SECONDS + 0.5 + 2.0 * bars + 0.3
    t = np.arange(round(seconds * rate)) / rate
    bar = np.floor((t - PICKUP_SECONDS - 0.5) / 2.0)
    # The phase runs on across bar lines: the raw track itself has no clicks.
    audio = 0.3 * np.sin(2 * np.pi * np.cumsum(220 * 2 ** ((bar % 12) / 12)) / rate)
    if clicks:
        for beat in grid_of(seconds).beats_seconds:
            start = round(beat * rate)
            audio[start : start + 100] += 0.4 * np.exp(-np.arange(100) / 20.0)[: len(t) - start]
    return audio.astype(np.float32)


@cache
def pair(kind: str, seed: int, crossfade_ms: float = 10.0):
    raw = music()
    settings = SynthSettings(programs={kind: 1}, crossfade_ms=crossfade_ms)
    return make_pair(raw, grid_of(len(raw) / RATE), settings, seed)


def downbeats(raw_samples: int) -> np.ndarray:
    """Bar-line frames computed from the grid here, not by the code under test."""
    seconds = grid_of(raw_samples / RATE).beats_seconds[1::4]
    return np.round(seconds * RATE / HOP).astype(int)


def joins(pointers: np.ndarray) -> np.ndarray:
    """Edited frames after which the pointer does not simply move on by one."""
    frames = pointers[:-1]
    return np.flatnonzero(np.diff(frames) != 1)


def assert_copies(edit, raw, pointers, gains, atol: float) -> np.ndarray:
    """Check that each edited frame away from a join is its raw frame times the gain (running
    linearly from the frame's gain to the next one's); returns the frames checked."""
    near_join = np.zeros(len(pointers) - 1, bool)
    for frame in joins(pointers):  # a crossfade reaches at most 10 ms (< 1 frame) either side
        near_join[max(frame - 1, 0) : frame + 3] = True
    frames = np.flatnonzero(~near_join)
    offsets = np.arange(HOP)
    gain = gains[frames, None] + np.outer(gains[frames + 1] - gains[frames], offsets / HOP)
    expected = gain * raw[pointers[frames, None] * HOP + offsets]
    np.testing.assert_allclose(edit[frames[:, None] * HOP + offsets], expected, atol=atol)
    return frames


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", PROGRAM_KINDS)
def test_every_kind_plays_the_raw_audio_at_its_pointers_times_its_gains(kind, seed):
    p = pair(kind, seed)
    pointers, gains = p.pointers, p.gains.astype(np.float64)
    assert pointers[-1] == STOP_TOKEN and np.all(pointers[:-1] >= 0)
    assert len(p.edit) == (len(pointers) - 1) * HOP == len(gains[:-1]) * HOP
    checked = assert_copies(p.edit, p.raw, pointers, gains, atol=1e-6)
    assert len(checked) > 0.9 * (len(pointers) - 1)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", PROGRAM_KINDS)
def test_edits_are_as_long_as_their_bars_and_jump_only_on_bar_lines(kind, seed):
    p = pair(kind, seed)
    bar_lines = downbeats(len(p.raw))
    n_frames = len(p.raw) // HOP
    span = {-1: bar_lines[0]} | {
        unit: bar_lines[unit + 1] - bar_lines[unit] for unit in range(len(bar_lines) - 1)
    }
    span[len(bar_lines) - 1] = n_frames - bar_lines[-1]  # the tail
    assert len(p.pointers) - 1 == sum(span[unit] for unit in p.program.playlist)
    frames = p.pointers[:-1]
    for k in joins(p.pointers):
        assert frames[k] + 1 in bar_lines and frames[k + 1] in bar_lines
    assert frames[0] == 0 or frames[0] in bar_lines
    assert frames[-1] + 1 == n_frames or frames[-1] + 1 in bar_lines
    if kind in ("radio_edit", "trim"):
        assert len(frames) < n_frames
    if kind == "extended":
        assert len(frames) > n_frames


def bar_frames(p, first: int, end: int) -> np.ndarray:
    bar_lines = downbeats(len(p.raw))
    return np.arange(bar_lines[first], bar_lines[end])


@pytest.mark.parametrize("seed", range(6))
def test_loops_play_the_looped_bars_again_and_again(seed):
    p = pair("extended", seed)
    loops = [step for step in p.program.steps if step.op in ("loop_bar", "loop_phrase")]
    assert loops
    frames = p.pointers[:-1]
    for step in loops:
        block = bar_frames(p, *step.bars)
        assert step.bars[1] - step.bars[0] == (1 if step.op == "loop_bar" else 4)
        [start] = np.flatnonzero(frames == block[0])[:1]
        passes = step.detail["repeats"] + 1
        np.testing.assert_array_equal(frames[start : start + passes * len(block)],
                                      np.tile(block, passes))  # fmt: skip
        assert np.sum(frames == block[0]) == passes


@pytest.mark.parametrize("seed", range(6))
def test_radio_edits_and_trims_leave_out_exactly_the_bars_they_name(seed):
    for kind in ("radio_edit", "trim"):
        p = pair(kind, seed)
        frames = p.pointers[:-1]
        removed = [step for step in p.program.steps if step.bars is not None]
        assert removed
        for step in removed:
            assert not np.isin(bar_frames(p, *step.bars), frames).any(), step
            if step.op == "intro_trim":
                assert frames[0] == bar_frames(p, *step.bars)[-1] + 1
            if step.op == "outro_trim":
                assert frames[-1] + 1 == bar_frames(p, *step.bars)[0]
        dropped = np.setdiff1d(np.arange(len(p.raw) // HOP), frames)
        named = np.concatenate([bar_frames(p, *step.bars) for step in removed])
        bar_lines = downbeats(len(p.raw))
        # Trims also drop the pickup before the first bar line and the tail after the last.
        ends = np.r_[np.arange(bar_lines[0]), np.arange(bar_lines[-1], len(p.raw) // HOP)]
        np.testing.assert_array_equal(np.setdiff1d(dropped, ends), np.setdiff1d(named, ends))


@pytest.mark.parametrize("seed", SEEDS)
def test_a_swap_plays_the_later_phrase_in_the_earlier_ones_place(seed):
    p = pair("reorder", seed)
    [step] = p.program.steps
    first, later = bar_frames(p, *step.bars), bar_frames(p, *step.detail["with"])
    frames = p.pointers[:-1]
    at_first, at_later = (
        np.flatnonzero(frames == first[0])[0],
        np.flatnonzero(frames == later[0])[0],
    )
    assert at_later < at_first
    assert frames[at_later : at_later + len(later)].tolist() == later.tolist()
    assert sorted(frames.tolist()) == list(range(len(p.raw) // HOP))  # nothing lost or doubled


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", PROGRAM_KINDS)
def test_ops_mark_the_loops_cuts_fades_and_stop_the_program_makes(kind, seed):
    p = pair(kind, seed)
    segments = p.program.segments(p.layout)
    frames = len(p.pointers) - 1
    expected = np.full(frames + 1, C)
    fade_in, fade_out = p.program.fade_in_frames, p.program.fade_out_frames
    expected[:fade_in] = FADE_IN
    expected[frames - fade_out : frames] = FADE_OUT
    at = 0
    for before, after in itertools.pairwise(segments):
        at += before[1] - before[0]
        if after[0] < before[1]:
            expected[at - 1], expected[at] = LOOP_END, LOOP_START
        else:
            expected[at - 1] = SKIP
    expected[frames] = STOP
    np.testing.assert_array_equal(p.ops, expected)
    if fade_in:  # fades start from / end in silence
        assert p.gains[0] == 0 and p.edit[0] == 0
    if fade_out:
        assert p.gains[-1] == 0 and np.abs(p.edit[-HOP // 4 :]).max() < 0.5 / fade_out
    fades = {step.op: step.frames for step in p.program.steps if step.frames is not None}
    assert fades.get("fade_in", (0, 0))[1] == fade_in
    assert fades.get("fade_out", (0, 0))[0] == (frames - fade_out if fade_out else 0)
    ops = set(p.ops.tolist())
    if kind == "extended":
        assert {LOOP_START, LOOP_END} <= ops
    if kind == "fade":
        assert ops & {FADE_IN, FADE_OUT}
    if kind == "reorder":
        assert {SKIP, LOOP_END} <= ops
    if any(step.op.startswith("cut_") for step in p.program.steps):
        assert SKIP in ops


def test_joins_are_crossfaded_without_clicks():
    raw = music(clicks=False)
    p = pair("reorder", 0)
    segments = p.program.segments(p.layout)
    gains = np.ones(sum(end - start for start, end in segments) + 1)
    smooth, hard = render(raw, segments, gains, HOP, 220), render(raw, segments, gains, HOP, 0)
    at = np.cumsum([(end - start) * HOP for start, end in segments])[:-1]
    steps_smooth, steps_hard = np.abs(np.diff(smooth)), np.abs(np.diff(hard))
    elsewhere = np.delete(steps_smooth, np.concatenate([np.arange(a - 300, a + 300) for a in at]))
    assert steps_hard[at - 1].max() > 4 * elsewhere.max()  # a cut between two tones clicks
    for a in at:
        # Two tones at -3 dB each may slope up to sqrt(2) times one tone at full level.
        assert steps_smooth[a - 300 : a + 300].max() < 2 * elsewhere.max()


def test_a_seed_decides_the_pair():
    again = make_pair(music(), grid_of(len(music()) / RATE), SynthSettings(), 7)
    same = make_pair(music(), grid_of(len(music()) / RATE), SynthSettings(), 7)
    other = make_pair(music(), grid_of(len(music()) / RATE), SynthSettings(), 8)
    np.testing.assert_array_equal(again.edit, same.edit)
    np.testing.assert_array_equal(again.ops, same.ops)
    assert again.program == same.program
    assert not np.array_equal(again.pointers, other.pointers) or not np.array_equal(
        again.gains, other.gains
    )


def fixed_grid(audio: np.ndarray, sample_rate: int) -> BeatGrid:
    return grid_of(np.asarray(audio).shape[-1] / sample_rate)


def music_folder(root):
    """A long track at 44.1 kHz stereo (resampled on the way in) and one of only 4 bars."""
    long = music(rate=44100)
    write(root / "album" / "long one.flac", np.stack([long, 0.5 * long]), 44100)
    write(root / "short.wav", music(bars=4)[None], RATE)
    return root


def test_synthesized_files_are_pairs_with_their_ground_truth(tmp_path):
    out = tmp_path / "training_data"
    report = synthesize_pairs(music_folder(tmp_path / "music"), out, 3, seed=4, grid_for=fixed_grid)
    assert [p.name for p in report.pairs] == ["long_one_0000", "long_one_0001", "long_one_0002"]
    assert len({p.seed for p in report.pairs}) == 3
    [(short, reason)] = report.skipped
    assert short.name == "short.wav" and "whole bars" in reason and "min_bars" in reason
    found = find_pairs(out)
    assert [p.name for p in found.pairs] == [p.name for p in report.pairs] and not found.skipped
    for listed in found.pairs:
        truth = np.load(out / "pointer_sequences" / f"{listed.name}.npz")
        assert (int(truth["hop_samples"]), int(truth["sample_rate"])) == (HOP, RATE)
        raw, raw_rate = sf.read(listed.raw, dtype="float32")
        edit, edit_rate = sf.read(listed.edit, dtype="float32")
        assert raw_rate == edit_rate == RATE and raw.ndim == edit.ndim == 1
        pointers, gains = truth["pointers"], truth["gains"].astype(np.float64)
        assert (
            len(pointers) == len(gains) == len(truth["ops"])
            and len(edit) == (len(pointers) - 1) * HOP
        )
        assert_copies(edit, raw, pointers, gains, atol=1.01 / 32768)  # 16-bit rounding
        record = json.loads((out / "pointer_sequences" / f"{listed.name}.json").read_text())
        assert record["seed"] == 4 and record["settings"]["crossfade_ms"] == 10.0
        assert record["source"].endswith("long one.flac")
        steps = record["program"]["steps"]
        assert steps and all("source_seconds" in s and "source_beats" in s for s in steps)
        for step in (s for s in steps if "source_bars" in s):
            first_bar = step["source_bars"][0]
            assert step["source_beats"][0] == 1 + 4 * first_bar
            assert step["source_seconds"][0] == pytest.approx(
                PICKUP_SECONDS + 0.5 + 2 * first_bar, abs=HOP / RATE
            )


def test_the_same_seed_writes_the_same_files_and_another_seed_others(tmp_path):
    music_dir = music_folder(tmp_path / "music")
    runs = {}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        synthesize_pairs(music_dir, tmp_path / name, 2, seed=seed, grid_for=fixed_grid)
        runs[name] = {
            path.relative_to(tmp_path / name).as_posix(): path.read_bytes()
            for path in sorted((tmp_path / name).rglob("*"))
            if path.is_file()
        }
    assert runs["a"] == runs["b"] and len(runs["a"]) == 8
    assert runs["a"].keys() == runs["c"].keys()
    assert (
        runs["a"]["desired_output/long_one_0000_edit.wav"]
        != runs["c"]["desired_output/long_one_0000_edit.wav"]
    )


def test_max_seconds_crops_the_raw_track(tmp_path):
    settings = SynthSettings(max_seconds=30.0)
    report = synthesize_pairs(
        music_folder(tmp_path / "music"), tmp_path / "out", 1, settings, grid_for=fixed_grid
    )
    assert report.pairs[0].raw_seconds == pytest.approx(30.0)
    assert sf.info(tmp_path / "out" / "input" / "long_one_0000_raw.wav").duration == pytest.approx(
        30.0
    )


def test_cli_makes_pairs_then_reports_them(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(
        synth, "track_beats", lambda audio, rate, beats_per_bar: fixed_grid(audio, rate)
    )
    music_dir, out = music_folder(tmp_path / "music"), tmp_path / "training_data"
    argv = ["edit", "synth", "--input_dir", str(music_dir), "--output_dir", str(out), "--n", "2"]
    assert main([*argv, "--programs", "extended=1", "--seed", "3", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "2 synthetic pairs (2 extended)" in printed and "short.wav" in printed
    assert main(["edit", "pairs", "--data_dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "2 pair(s), 0 reference track(s), 0 file(s) skipped" in printed
    assert "long_one_0001" in printed
    assert main([*argv, "--programs", "radio=1"]) == 1
    assert "unknown kind(s) ['radio']" in capsys.readouterr().err
