"""Alignment of edits with their raw tracks (`helius.edit.align`): on a generated track whose
every beat is a different chord, with its exact beat grid, identity edits, cuts, loops, swaps
and synth programs are recovered frame by frame, fades become FADE_IN/FADE_OUT, unrelated audio
is reported as poorly aligned, and `align_folder` and `helius edit align` write pointer files
beside, never over, the pair's audio and ground truth."""

from __future__ import annotations

import json
from functools import cache

import numpy as np
import pytest
from helpers import snapshot, write

from helius.audio.beats import BeatGrid, NoBeatsError
from helius.cli import main
from helius.edit import align as align_module
from helius.edit.align import AlignSettings, align_folder, align_pair, score_alignment
from helius.edit.ops import PAD_TOKEN, STOP_TOKEN, EditOp
from helius.edit.programs import SynthSettings
from helius.edit.synth import make_pair, render, write_pair

RATE, HOP = 22050, 256
BEAT, PICKUP_SECONDS = 0.5, 0.37  # 120 BPM; bar lines fall between frames
BEATS = 49  # a pickup beat, then 12 bars of 4
CROSSFADE = round(0.010 * RATE)


def grid_of(seconds: float) -> BeatGrid:
    """Beats every BEAT from PICKUP_SECONDS; beat 1 is the first downbeat."""
    return BeatGrid(np.arange(PICKUP_SECONDS, seconds, BEAT), first_downbeat=1)


def exact_grid(audio: np.ndarray, sample_rate: int) -> BeatGrid:
    return grid_of(len(audio) / sample_rate)


@cache
def music() -> np.ndarray:
    """(T,) a different three-note chord on every beat, each note's partials fading at their
    own rate (so the sound changes within a beat), a click on the beat, a faint noise bed."""
    rng = np.random.default_rng(7)
    seconds = PICKUP_SECONDS + BEATS * BEAT + 0.3
    t = np.arange(round(seconds * RATE)) / RATE
    audio = 0.003 * rng.standard_normal(len(t))
    roots = 110.0 * 2 ** (rng.permutation(BEATS) / 12)  # 49 semitones: no chord comes twice
    for beat, root in enumerate(roots):
        start = round((PICKUP_SECONDS + beat * BEAT) * RATE)
        local = t[: round(BEAT * RATE)]
        note = np.zeros_like(local)
        for ratio in (1.0, 1.25, 1.5):
            for partial in (1, 2, 3):
                decay = np.exp(-local * 2.0 * partial**1.5)
                note += decay * np.sin(2 * np.pi * root * ratio * partial * local) / partial
        note[:80] += rng.standard_normal(80) * np.linspace(1, 0, 80)
        audio[start : start + len(note)] += 0.1 * note[: len(audio) - start]
    return audio.astype(np.float32)


def bar_lines() -> np.ndarray:
    """Downbeat frames computed from the grid here, not by the code under test."""
    seconds = grid_of(len(music()) / RATE).beats_seconds[1::4]
    return np.round(seconds * RATE / HOP).astype(int)


def frames() -> int:
    return len(music()) // HOP


def spliced(segments: list[tuple[int, int]], gains: np.ndarray | None = None):
    """(edit audio, true pointers) of raw frame ranges played in order, crossfaded."""
    pointers = np.concatenate([*(np.arange(s, e) for s, e in segments), [STOP_TOKEN]])
    gains = np.ones(len(pointers)) if gains is None else gains
    return render(music(), segments, gains, HOP, CROSSFADE), pointers.astype(np.int64)


def edit_of(kind: str) -> list[tuple[int, int]]:
    b, n = bar_lines(), frames()
    return {
        "cut": [(0, b[3]), (b[6], n)],  # bars 3-5 gone: a forward jump
        "loop": [(0, b[4]), (b[2], b[9])],  # bars 2-3 twice (a backward jump), no outro
        "swap": [(0, b[2]), (b[6], b[10]), (b[2], b[6]), (b[10], n)],  # two phrases swapped
    }[kind]


def test_an_identity_edit_aligns_to_the_identity():
    alignment = align_pair(music(), music(), grid=grid_of(len(music()) / RATE))
    np.testing.assert_array_equal(alignment.pointers, [*range(frames()), STOP_TOKEN])
    assert alignment.segments == [(0, frames(), 0)] and alignment.jumps == 0
    assert np.all(alignment.gains == 1.0)
    assert set(alignment.ops[:-1].tolist()) == {int(EditOp.COPY)}
    assert alignment.ops[-1] == int(EditOp.STOP)
    assert alignment.quality == 1.0 and alignment.mean_similarity > 0.999


@pytest.mark.parametrize("kind", ["cut", "loop", "swap"])
def test_cuts_loops_and_swaps_are_recovered_frame_by_frame(kind):
    segments = edit_of(kind)
    edit, truth = spliced(segments)
    alignment = align_pair(music(), edit, grid=grid_of(len(music()) / RATE))
    score = score_alignment(alignment.pointers, truth)
    assert score["within_1"] >= 0.95 and score["length_error"] == 0
    assert alignment.jumps == len(segments) - 1
    # Each join is found within a frame of where it is.
    true_starts = np.cumsum([0, *(e - s for s, e in segments)])[:-1]
    found_starts = [start for start, _, _ in alignment.segments]
    np.testing.assert_allclose(found_starts, true_starts, atol=1)
    ops = set(alignment.ops.tolist())
    if kind == "cut":
        assert int(EditOp.SKIP) in ops and int(EditOp.LOOP_END) not in ops
    else:
        assert {int(EditOp.LOOP_START), int(EditOp.LOOP_END)} <= ops
    assert alignment.quality > 0.95


@pytest.mark.parametrize("kind", ["cut", "loop", "swap"])
def test_joins_land_on_their_frame_even_next_to_a_loud_downbeat(kind):
    """A burst on every bar line: a window reaching across a join would hear the next
    segment's burst louder than the rest and pull the join a frame early."""
    raw = music().copy()
    rng = np.random.default_rng(11)
    for frame in bar_lines():
        burst = 0.8 * rng.standard_normal(400) * np.exp(-np.arange(400) / 120)
        raw[frame * HOP : frame * HOP + 400] += burst.astype(np.float32)
    segments = edit_of(kind)
    lengths = [end - start for start, end in segments]
    edit = render(raw, segments, np.ones(sum(lengths) + 1), HOP, CROSSFADE)
    alignment = align_pair(raw, edit, grid=grid_of(len(raw) / RATE))
    assert [start for start, _, _ in alignment.segments] == np.cumsum([0, *lengths[:-1]]).tolist()
    assert [raw_start for _, _, raw_start in alignment.segments] == [s for s, _ in segments]


@pytest.mark.parametrize(("kind", "seed"), [("radio_edit", 0), ("extended", 1), ("reorder", 2)])
def test_synth_programs_are_recovered_on_an_exact_grid(kind, seed):
    pair = make_pair(music(), grid_of(len(music()) / RATE), SynthSettings(programs={kind: 1}), seed)
    alignment = align_pair(pair.raw, pair.edit, grid_for=exact_grid)
    score = score_alignment(alignment.pointers, pair.pointers)
    assert score["within_1"] >= 0.95 and score["length_error"] == 0
    assert np.mean(alignment.ops == pair.ops) >= 0.95


def test_fades_are_found_as_fade_ops_and_do_not_move_the_pointers():
    n = frames()
    fade_in, fade_out = 80, 250
    gains = np.ones(n + 1)
    gains[:fade_in] = np.arange(fade_in) / fade_in
    gains[-fade_out - 1 :] = np.arange(fade_out, -1, -1) / fade_out
    edit, truth = spliced([(0, n)], gains)
    alignment = align_pair(music(), edit, grid=grid_of(len(music()) / RATE))
    assert score_alignment(alignment.pointers, truth)["within_1"] >= 0.99
    assert np.max(np.abs(alignment.gains - gains)) < 0.05
    ops = alignment.ops
    assert np.mean(ops[:fade_in] == int(EditOp.FADE_IN)) >= 0.9
    assert np.mean(ops[n - fade_out : n] == int(EditOp.FADE_OUT)) >= 0.9
    middle = ops[fade_in + 5 : n - fade_out - 5]
    assert np.all(middle == int(EditOp.COPY))


def test_quiet_frames_neither_steer_the_path_nor_lower_the_quality():
    n, fade = frames(), 400
    gains = np.ones(n + 1)
    gains[-fade - 1 :] = 10 ** (np.linspace(0, -100, fade + 1) / 20)  # to -100 dB, in dB steps
    edit, truth = spliced([(0, n)], gains)
    # A noise floor at -90 dBFS (dither, say) is all the last part of the fade holds.
    edit += (10 ** (-90 / 20) * np.random.default_rng(0).standard_normal(len(edit))).astype(
        np.float32
    )
    alignment = align_pair(music(), edit, grid=grid_of(len(music()) / RATE))
    assert score_alignment(alignment.pointers, truth)["exact"] == 1.0
    assert np.min(alignment.weights[-100:]) == 0.0 and alignment.quality > 0.99


def test_an_unrelated_edit_is_poorly_aligned():
    settings = AlignSettings()
    rng = np.random.default_rng(3)
    noise = (0.1 * rng.standard_normal(len(music()))).astype(np.float32)
    other = np.roll(music()[::-1], 1000)  # the same sounds, played backwards
    for edit in (noise, other):
        assert align_pair(music(), edit, grid_for=exact_grid).quality < settings.threshold
    edit, _ = spliced(edit_of("swap"))
    assert align_pair(music(), edit, grid_for=exact_grid).quality > settings.threshold


def test_score_alignment_counts_frames_near_the_truth():
    truth = np.array([5, 6, 7, 8, 20, 21, STOP_TOKEN])
    assert score_alignment(truth, truth) == {
        "exact": 1.0,
        "within_1": 1.0,
        "within_5": 1.0,
        "length_error": 0,
    }
    shifted = score_alignment(np.array([6, 7, 8, 9, 23, 21, STOP_TOKEN, PAD_TOKEN]), truth)
    assert shifted == {"exact": 1 / 6, "within_1": 5 / 6, "within_5": 1.0, "length_error": 0}
    short = score_alignment(np.array([5, 6, 7, STOP_TOKEN]), truth)
    assert short["exact"] == 0.5 and short["length_error"] == -3


def training_folder(root):
    """root holds a synth pair with ground truth (song), a hand-made cut without (cut), and
    an edit that is noise (noise)."""
    pair = make_pair(music(), grid_of(len(music()) / RATE), SynthSettings(), seed=5)
    write_pair(pair, root, "song", {"name": "song"})
    edit, _ = spliced(edit_of("cut"))
    write(root / "input" / "cut_raw.wav", music()[None], RATE)
    write(root / "desired_output" / "cut_edit.wav", edit[None], RATE)
    rng = np.random.default_rng(1)
    write(root / "input" / "noise_raw.wav", music()[None], RATE)
    noise = (0.1 * rng.standard_normal((1, len(music())))).astype(np.float32)
    write(root / "desired_output" / "noise_edit.wav", noise, RATE)
    return pair


def test_align_folder_writes_beside_the_pairs_and_reports_the_poor_ones(tmp_path):
    pair = training_folder(tmp_path)
    before = snapshot(tmp_path)
    report = align_folder(tmp_path, grid_for=exact_grid)
    assert snapshot(tmp_path).items() >= before.items()  # nothing there before has changed
    added = set(snapshot(tmp_path)) - set(before)
    assert added == {f"aligned/{n}.npz" for n in ("cut", "noise", "song")} | {"aligned/report.json"}
    truth = np.load(tmp_path / "pointer_sequences" / "song.npz")
    for name in ("cut", "noise", "song"):
        with np.load(tmp_path / "aligned" / f"{name}.npz") as aligned:
            assert set(aligned.files) == set(truth.files)
            for key in truth.files:
                assert aligned[key].dtype == truth[key].dtype, key
            assert aligned["pointers"][-1] == STOP_TOKEN
            assert len(aligned["pointers"]) == len(aligned["ops"]) == len(aligned["gains"])
            assert (int(aligned["hop_samples"]), int(aligned["sample_rate"])) == (HOP, RATE)
    with np.load(tmp_path / "aligned" / "song.npz") as aligned:
        assert score_alignment(aligned["pointers"], pair.pointers)["within_1"] >= 0.95
    assert report.poorly_aligned == ["noise"] and not report.failed
    rows = {row.name: row for row in report.pairs}
    assert rows["song"].truth["within_1"] >= 0.95 and rows["cut"].truth is None
    assert all(row.beats for row in report.pairs)
    record = json.loads((tmp_path / "aligned" / "report.json").read_text())
    assert record["poorly_aligned"] == ["noise"] and record["threshold"] == report.threshold
    assert [p["name"] for p in record["pairs"]] == ["cut", "noise", "song"]
    assert record["pairs"][0]["path"] == "aligned/cut.npz"
    assert record["pairs"][0]["quality"] > report.threshold > record["pairs"][1]["quality"]


def test_align_folder_aligns_without_beats_when_none_can_be_tracked(tmp_path):
    training_folder(tmp_path)

    def no_beats(audio, sample_rate):
        raise NoBeatsError("no pulse")

    report = align_folder(tmp_path, threshold=0.5, grid_for=no_beats)
    assert not any(row.beats for row in report.pairs) and report.threshold == 0.5
    assert {row.name: row.truth for row in report.pairs}["song"]["within_1"] >= 0.95
    assert report.poorly_aligned == ["noise"]


def test_cli_aligns_a_folder_and_prints_the_report(tmp_path, monkeypatch, capsys):
    training_folder(tmp_path)
    monkeypatch.setattr(align_module, "_track_beats", exact_grid)
    argv = ["edit", "align", "--data_dir", str(tmp_path), "--quiet"]
    assert main([*argv, "--threshold", "0.7"]) == 0
    printed = capsys.readouterr().out
    assert "3 pair(s) aligned into aligned/, 1 poorly (quality < 0.7), 0 failed" in printed
    assert "noise: quality" in printed and "POORLY ALIGNED" in printed
    assert "within 1 frame of pointer_sequences/" in printed
    assert (tmp_path / "aligned" / "song.npz").is_file()
    with pytest.raises(SystemExit):
        main([*argv, "--threshold", "1.5"])
    assert "must be from 0 to 1" in capsys.readouterr().err
    assert main(["edit", "align", "--data_dir", str(tmp_path / "missing")]) == 1
    assert "no input/ and desired_output/ folder" in capsys.readouterr().err
