"""The beat and bar grid (`helius.audio.beats`): on synthetic drum patterns whose beat times are
known exactly, the tracked beats land within 70 ms of the truth, the downbeats are the bar
starts, a tempo change halfway is followed; silence and bad grids are refused clearly."""

from __future__ import annotations

import numpy as np
import pytest

from helius.audio.beats import BeatGrid, NoBeatsError, downbeat_phase, track_beats
from helius.errors import DataError

RATE = 22050
TOLERANCE = 0.07
# Bass root (Hz) and triad (Hz) of each bar, cycled: Am, Dm, E, F; bass and harmony change
# on every bar line, as in most popular music.
BARS = [
    (55.00, (220.00, 261.63, 329.63)),
    (73.42, (293.66, 349.23, 440.00)),
    (82.41, (329.63, 415.30, 493.88)),
    (87.31, (349.23, 440.00, 523.25)),
]


def drum_pattern(
    tempi: list[tuple[float, int]], pickup: int = 2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(audio, beat times, downbeat times) of 4/4 bars: a kick, a bass note and a new chord on
    beat 1, hi-hats on beats 2-4. `tempi` lists (BPM, beats) sections; the first `pickup` beats
    are a count-in (loud hi-hats), so the first downbeat is beat `pickup`, not beat 0."""
    rng = np.random.default_rng(seed)
    intervals = np.concatenate([np.full(count, 60.0 / bpm) for bpm, count in tempi])
    beats = 0.25 + np.concatenate([[0.0], np.cumsum(intervals)[:-1]])
    audio = 0.002 * rng.standard_normal(round((beats[-1] + intervals[-1] + 0.25) * RATE))
    t = np.arange(round(0.4 * RATE)) / RATE
    kick = 0.8 * np.sin(2 * np.pi * (50 * t + 70 / 30 * (1 - np.exp(-30 * t)))) * np.exp(-12 * t)
    downbeats = []
    for index, start in enumerate(beats):
        at = round(start * RATE)
        position = (index - pickup) % 4
        if index < pickup or position != 0:
            burst = np.diff(rng.standard_normal(round(0.05 * RATE) + 1))
            hat = (0.8 if index < pickup else 0.25) * burst * np.exp(-80 * t[: len(burst)])
            audio[at : at + len(hat)] += hat[: len(audio) - at]
            continue
        downbeats.append(start)
        bar_samples = min(round(4 * intervals[index] * RATE), len(audio) - at)
        s = np.arange(bar_samples) / RATE
        envelope = np.minimum(s / 0.01, 1) * np.exp(-1.5 * s)
        root, triad = BARS[(index - pickup) // 4 % len(BARS)]
        tone = 0.3 * np.sin(2 * np.pi * root * s) + 0.15 * np.sin(4 * np.pi * root * s)
        tone += sum(0.08 * np.sin(2 * np.pi * f * s) for f in triad)
        audio[at : at + bar_samples] += envelope * tone
        audio[at : at + len(kick)] += kick[: len(audio) - at]
    return audio.astype(np.float32), beats, np.array(downbeats)


def f_measure(estimated: np.ndarray, truth: np.ndarray, tolerance: float = TOLERANCE) -> float:
    """F-measure of one-to-one matches within `tolerance` seconds, each true beat greedily
    taking the nearest unmatched estimate."""
    if len(estimated) == 0 or len(truth) == 0:
        return 0.0
    free = np.ones(len(estimated), dtype=bool)
    hits = 0
    for time in truth:
        distance = np.where(free, np.abs(estimated - time), np.inf)
        nearest = int(np.argmin(distance))
        if distance[nearest] <= tolerance:
            free[nearest] = False
            hits += 1
    precision, recall = hits / len(estimated), hits / len(truth)
    return 0.0 if hits == 0 else 2 * precision * recall / (precision + recall)


@pytest.fixture(scope="module")
def steady():
    audio, beats, downbeats = drum_pattern([(120.0, 42)])
    return track_beats(audio, RATE), beats, downbeats


@pytest.fixture(scope="module")
def changing():
    audio, beats, downbeats = drum_pattern([(100.0, 26), (130.0, 34)], seed=1)
    return track_beats(audio, RATE), beats, downbeats


def test_the_reference_f_measure_scores_hits_misses_and_extras():
    truth = np.array([1.0, 2.0, 3.0, 4.0])
    assert f_measure(truth + 0.05, truth) == 1.0
    assert f_measure(truth + 0.1, truth) == 0.0
    assert f_measure(np.array([1.0, 1.01, 2.0, 3.0, 4.0]), truth) == pytest.approx(8 / 9)
    assert f_measure(np.array([]), truth) == 0.0


def test_steady_beats_are_within_70_ms(steady):
    grid, beats, _ = steady
    assert f_measure(grid.beats_seconds, beats) >= 0.9
    assert np.median(grid.tempo_bpm) == pytest.approx(120.0, rel=0.03)


def test_the_downbeats_are_the_bar_starts(steady):
    grid, _, downbeats = steady
    assert grid.beats_per_bar == 4
    assert f_measure(grid.downbeats_seconds, downbeats) >= 0.9
    bars = grid.bars()
    assert bars.shape == (len(grid.downbeats_seconds) - 1, 2)
    assert np.allclose(bars[:, 1] - bars[:, 0], 2.0, atol=0.05)  # 4 beats at 120 BPM


def test_the_bar_phase_is_where_the_chords_change():
    frames = np.arange(40) * 10
    chords = np.eye(12)[(np.arange(400) - 10) // 40 % 12].T  # a new chord on beats 1, 5, 9...
    flat = np.zeros(400)
    assert downbeat_phase(frames, flat, flat, chords, 4) == 1
    assert downbeat_phase(frames, flat, flat, np.roll(chords, 20, axis=1), 4) == 3
    assert downbeat_phase(frames[:3], flat, flat, chords, 4) in (0, 1, 2)


def test_a_tempo_change_halfway_is_followed(changing):
    grid, beats, downbeats = changing
    change = beats[26]
    slow, fast = beats < change, beats >= change
    tracked_slow = grid.beats_seconds < change
    assert f_measure(grid.beats_seconds[tracked_slow], beats[slow]) >= 0.9
    assert f_measure(grid.beats_seconds[~tracked_slow], beats[fast]) >= 0.9
    tempo = grid.tempo_bpm
    assert np.median(tempo[tracked_slow]) == pytest.approx(100.0, rel=0.05)
    assert np.median(tempo[~tracked_slow]) == pytest.approx(130.0, rel=0.05)
    assert f_measure(grid.downbeats_seconds, downbeats) >= 0.9


def test_stereo_is_averaged_to_mono():
    audio, beats, _ = drum_pattern([(120.0, 32)], seed=2)
    grid = track_beats(np.stack([audio, audio]), RATE)
    assert np.allclose(grid.beats_seconds, track_beats(audio, RATE).beats_seconds)
    assert f_measure(grid.beats_seconds, beats) >= 0.9


@pytest.mark.parametrize(
    ("audio", "message"),
    [
        (np.zeros(10 * RATE, dtype=np.float32), "silent"),
        (np.full(10 * RATE, 1e-6, dtype=np.float32), "silent"),
        (0.1 * np.sin(np.arange(10 * RATE) * 0.1).astype(np.float32), "no pulse"),
        (np.full(10 * RATE, 0.1, dtype=np.float32), "no pulse"),
        (0.1 * np.random.default_rng(0).standard_normal(10 * RATE), "no pulse"),
        (drum_pattern([(120.0, 4)])[0][: 2 * RATE], "2.00 s long"),
    ],
)
def test_silence_held_tones_noise_and_short_audio_are_refused(audio, message):
    with pytest.raises(NoBeatsError, match=message) as caught:
        track_beats(audio, RATE)
    assert isinstance(caught.value, DataError) and isinstance(caught.value, ValueError)


def test_bad_audio_and_arguments_are_refused():
    audio = drum_pattern([(120.0, 8)])[0]
    with pytest.raises(ValueError, match="shape"):
        track_beats(audio[None, None], RATE)
    with pytest.raises(ValueError, match="NaN"):
        track_beats(np.where(np.arange(len(audio)) == 5, np.nan, audio), RATE)
    with pytest.raises(ValueError, match="beats_per_bar"):
        track_beats(audio, RATE, beats_per_bar=0)


def test_grid_validation_and_derived_views():
    with pytest.raises(ValueError, match="increasing"):
        BeatGrid(np.array([0.0, 1.0, 0.5]))
    with pytest.raises(ValueError, match="increasing"):
        BeatGrid(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="beats_per_bar"):
        BeatGrid(np.array([0.0, 1.0]), beats_per_bar=0)
    with pytest.raises(ValueError, match="first_downbeat"):
        BeatGrid(np.arange(8.0), first_downbeat=4)
    grid = BeatGrid(np.arange(10) * 0.5, first_downbeat=1, beats_per_bar=3)
    assert grid.downbeats_seconds.tolist() == [0.5, 2.0, 3.5]
    assert grid.bars().tolist() == [[0.5, 2.0], [2.0, 3.5]]
    assert np.allclose(grid.tempo_bpm, 120.0)
    assert grid.beat_frames(100, 10).tolist() == list(range(0, 50, 5))
    assert grid.downbeat_frames(100, 10).tolist() == [5, 20, 35]
    assert BeatGrid(np.array([1.0])).tempo_bpm.size == 0
