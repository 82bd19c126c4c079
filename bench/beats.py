"""Benchmark `helius.audio.beats.track_beats` against exact beat and downbeat labels.

The Planet Blupi soundtrack ships as MIDI files and as OGG renderings of the same files
(Debian: `apt-get install planetblupi-music-ogg planetblupi-music-midi`), so the MIDI's tempo
map and time signature give every beat and downbeat time of the audio exactly, up to two
constant shifts, both measured per track and reported:

- the notes' grid shift: in some files every note sits the same few ticks after the tempo
  map's grid (a sequencer pre-roll); the music's beats are the notes', so labels move with
  them (the modal note position within a sixteenth, when most notes share it);
- the rendering's offset: the lag maximising the correlation of a low-latency onset envelope
  of the audio with the MIDI note onsets over the first minute (searched over ±1 s), checked
  against the lag over the last minute (searched near it) to rule out drift.

Scores are mir_eval's beat F-measure (±70 ms) for beats and for downbeats, beats in the first
5 s ignored on both sides (mir_eval's usual trimming); also the downbeat F of the best single
bar phase of the tracked beats, which separates a wrong phase choice from dropped or added
beats. A track counts as steady when its tempo map holds one tempo or its inter-beat
intervals vary by under 5 % (coefficient of variation). Prints a table and writes
bench/results/beats-<date>-<host>.json with the load average at the start and the end, the
librosa version, per-track rows and means (all tracks, steady tracks). Needs the `dev` extra
(pretty_midi, mir_eval).

    python bench/beats.py [--music /usr/share/planetblupi/music] [--seconds 120] [--results-dir D]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
MUSIC = Path("/usr/share/planetblupi/music")
STEADY_CV = 0.05
# The offset search: a tiny hop and window keep the envelope's own latency under ~6 ms, and
# lags up to 1 s cover any plausible leading silence added or trimmed by the renderer.
ALIGN_HOP = 64
ALIGN_FFT = 256
MAX_LAG_SECONDS = 1.0
ALIGN_WINDOW_SECONDS = 60.0
# Under half the shortest beat (140 BPM): a drift check that cannot mistake a whole beat.
DRIFT_SEARCH_SECONDS = 0.2


def load_audio(path: Path, sample_rate: int, seconds: float | None) -> np.ndarray:
    """(T,) float32 mono audio of the file's first `seconds` (all when None) at sample_rate."""
    import soundfile as sf
    import soxr

    info = sf.info(str(path))
    frames = -1 if seconds is None else round(seconds * info.samplerate)
    audio, rate = sf.read(str(path), frames=frames, dtype="float32", always_2d=True)
    return soxr.resample(audio.mean(axis=1), rate, sample_rate).astype(np.float32)


def grid_shift(midi, onsets: np.ndarray) -> tuple[float, float]:
    """(ticks, fraction): the constant displacement of the notes from the tempo map's grid, in
    ticks (-1/32 to 1/32 of a quarter), and the fraction of notes within 3 ticks of it; 0 when
    under half the notes share one displacement."""
    step = max(1, midi.resolution // 4)  # a sixteenth note
    ticks = np.array([midi.time_to_tick(t) for t in onsets])
    residues = ticks % step
    mode = int(np.argmax(np.bincount(residues, minlength=step)))
    around = (residues - mode + step // 2) % step - step // 2  # circular, centred on the mode
    near = np.abs(around) <= 3
    fraction = float(near.mean())
    if fraction < 0.5:
        return 0.0, fraction
    shift = (mode + around[near].mean() + step / 2) % step - step / 2
    return float(shift), fraction


def midi_truth(path: Path) -> dict:
    """Beat and downbeat times, tempi and note onsets (seconds) of a MIDI file, whether its beat
    is steady, and the beats moved onto the notes when all notes sit off the tempo map's grid
    by one constant displacement (a sequencer pre-roll: the music's beats are the notes')."""
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(str(path))
    _, tempi = midi.get_tempo_changes()
    beats = midi.get_beats()
    intervals = np.diff(beats)
    variation = float(intervals.std() / intervals.mean())
    onsets = np.sort(np.concatenate([[n.start for n in i.notes] for i in midi.instruments]))
    shift_ticks, on_grid = grid_shift(midi, onsets)
    # Seconds per tick at each beat; beats are quarter notes in every meter x/4.
    tick_seconds = np.append(intervals, intervals[-1]) / midi.resolution
    downbeats = midi.get_downbeats()
    moved = dict(zip(beats, beats + shift_ticks * tick_seconds, strict=True))
    return {
        "tempo_map_beats": beats,
        "tempo_map_downbeats": downbeats,
        "beats": beats + shift_ticks * tick_seconds,
        "downbeats": np.array([moved.get(t, t) for t in downbeats]),
        "onsets": onsets,
        "end": midi.get_end_time(),
        "tempi": [float(t) for t in tempi],
        "meters": [f"{s.numerator}/{s.denominator}" for s in midi.time_signature_changes],
        "interval_cv": variation,
        "steady": len(tempi) == 1 or variation < STEADY_CV,
        "grid_shift_ticks": shift_ticks,
        "grid_shift_ms": 1000 * shift_ticks * float(np.median(tick_seconds)),
        "notes_on_shifted_grid": on_grid,
    }


def estimate_offset(
    audio: np.ndarray,
    sample_rate: int,
    onsets: np.ndarray,
    around: float = 0.0,
    max_lag: float = MAX_LAG_SECONDS,
) -> float:
    """Seconds by which the audio's events come after the MIDI onsets (negative: before), the
    lag within `around` ± `max_lag` maximising the correlation of the audio's onset envelope
    with an impulse train of the onsets."""
    import librosa

    mel = librosa.feature.melspectrogram(
        y=audio, sr=sample_rate, n_fft=ALIGN_FFT, hop_length=ALIGN_HOP, n_mels=40
    )
    # Frame k holds the rise from frame k-1 to k: frames are centred, so no latency shift.
    envelope = np.maximum(0.0, np.diff(librosa.power_to_db(mel), axis=1)).mean(axis=0)
    envelope = np.concatenate([[0.0], envelope - envelope.mean()])
    impulses = np.zeros(len(envelope))
    frames = np.round(onsets * sample_rate / ALIGN_HOP).astype(np.int64)
    np.add.at(impulses, frames[(frames >= 0) & (frames < len(envelope))], 1.0)
    centre, reach = (
        round(around * sample_rate / ALIGN_HOP),
        round(max_lag * sample_rate / ALIGN_HOP),
    )
    lags = np.arange(centre - reach, centre + reach + 1)
    n = len(envelope)
    score = [
        np.dot(envelope[max(0, k) : n + min(0, k)], impulses[max(0, -k) : n - max(0, k)])
        for k in lags
    ]
    return float(lags[int(np.argmax(score))] * ALIGN_HOP / sample_rate)


def track_offsets(audio: np.ndarray, sample_rate: int, onsets: np.ndarray) -> tuple[float, float]:
    """The offset over the first ALIGN_WINDOW_SECONDS of the audio, and over the last ones
    searched near it: music repeating every beat makes a lone window ambiguous by whole beats,
    the start (intro, first notes) is not, and drift would show as a different late offset."""
    window = round(ALIGN_WINDOW_SECONDS * sample_rate)
    first = estimate_offset(audio[:window], sample_rate, onsets)
    late_start = max(0, len(audio) - window) / sample_rate
    late_onsets = onsets[onsets >= late_start - MAX_LAG_SECONDS] - late_start
    late_audio = audio[round(late_start * sample_rate) :]
    last = estimate_offset(late_audio, sample_rate, late_onsets, first, DRIFT_SEARCH_SECONDS)
    return first, last


def beat_f(estimated: np.ndarray, reference: np.ndarray) -> float:
    import mir_eval

    return float(
        mir_eval.beat.f_measure(
            mir_eval.beat.trim_beats(reference), mir_eval.beat.trim_beats(estimated)
        )
    )


def score_track(name: str, music: Path, args: argparse.Namespace) -> dict:
    """One table row: the track's tempo, steadiness, offset and beat and downbeat F."""
    from helius.audio.beats import track_beats

    truth = midi_truth(music / f"{name}.mid")
    audio = load_audio(music / f"{name}.ogg", args.sample_rate, args.seconds)
    duration = len(audio) / args.sample_rate
    align = audio  # a short excerpt aligns ambiguously: music repeats every beat
    if duration < ALIGN_WINDOW_SECONDS:
        align = load_audio(music / f"{name}.ogg", args.sample_rate, ALIGN_WINDOW_SECONDS)
    offset, late_offset = track_offsets(align, args.sample_rate, truth["onsets"])
    started = time.perf_counter()
    grid = track_beats(audio, args.sample_rate)
    seconds = time.perf_counter() - started
    beats = grid.beats_seconds
    horizon = min(duration, truth["end"] + offset)

    def labels(times: np.ndarray, shift: float) -> np.ndarray:
        shifted = times + shift
        return shifted[(shifted >= 0) & (shifted < horizon)]

    return {
        "track": name,
        "seconds": round(duration, 2),
        "midi_bpm": truth["tempi"][0] if len(truth["tempi"]) == 1 else truth["tempi"],
        "meters": truth["meters"],
        "tracked_bpm": 60 * (len(beats) - 1) / (beats[-1] - beats[0]),
        "steady": truth["steady"],
        "interval_cv": truth["interval_cv"],
        "offset_ms": 1000 * offset,
        "late_offset_ms": 1000 * late_offset,
        "beat_f": beat_f(grid.beats_seconds, labels(truth["beats"], offset)),
        "downbeat_f": beat_f(grid.downbeats_seconds, labels(truth["downbeats"], offset)),
        "downbeat_f_best_phase": max(
            beat_f(beats[phase :: grid.beats_per_bar], labels(truth["downbeats"], offset))
            for phase in range(grid.beats_per_bar)
        ),
        "beat_f_no_offset": beat_f(grid.beats_seconds, labels(truth["beats"], 0.0)),
        "beat_f_tempo_map_grid": beat_f(
            grid.beats_seconds, labels(truth["tempo_map_beats"], offset)
        ),
        "grid_shift_ms": truth["grid_shift_ms"],
        "notes_on_shifted_grid": truth["notes_on_shifted_grid"],
        "first_downbeat": grid.first_downbeat,
        "track_seconds": round(seconds, 2),
    }


def summary(rows: list[dict]) -> dict:
    keys = (
        "beat_f",
        "downbeat_f",
        "downbeat_f_best_phase",
        "beat_f_no_offset",
        "beat_f_tempo_map_grid",
    )
    return {key: float(np.mean([row[key] for row in rows])) if rows else None for key in keys}


def print_table(rows: list[dict], means: dict) -> None:
    print(
        f"{'track':<10} {'MIDI BPM':>8} {'tracked':>7} {'steady':>6} {'grid ms':>7} "
        f"{'offset ms':>9} {'beat F':>6} {'downbeat F':>10} {'(best phase)':>12}"
    )
    for row in rows:
        bpm = row["midi_bpm"]
        print(
            f"{row['track']:<10} {f'{bpm:.1f}' if isinstance(bpm, float) else 'varies':>8} "
            f"{row['tracked_bpm']:>7.1f} {'yes' if row['steady'] else 'no':>6} "
            f"{row['grid_shift_ms']:>7.1f} {row['offset_ms']:>9.1f} {row['beat_f']:>6.3f} "
            f"{row['downbeat_f']:>10.3f} {row['downbeat_f_best_phase']:>12.3f}"
        )
    for group, values in means.items():
        if values["beat_f"] is not None:
            print(
                f"{'mean ' + group:<52} {values['beat_f']:>6.3f} {values['downbeat_f']:>10.3f} "
                f"{values['downbeat_f_best_phase']:>12.3f}"
            )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--music", type=Path, default=MUSIC, help="folder of NAME.mid + NAME.ogg")
    parser.add_argument("--sample-rate", type=int, default=22050, help="analysis rate")
    parser.add_argument("--seconds", type=float, help="score each track's first N s (all)")
    parser.add_argument("--tracks", nargs="*", help="track names (default: every pair)")
    parser.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_start = os.getloadavg()  # other work on the machine slows (never changes) the scores
    import librosa

    names = args.tracks or sorted(
        p.stem for p in args.music.glob("*.mid") if (args.music / f"{p.stem}.ogg").exists()
    )
    if not names:
        raise SystemExit(f"no NAME.mid + NAME.ogg pairs in {args.music}")
    rows = [score_track(name, args.music, args) for name in names]
    means = {"all": summary(rows), "steady": summary([row for row in rows if row["steady"]])}
    print_table(rows, means)
    now = datetime.datetime.now(datetime.timezone.utc)
    record = {
        "date": now.isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpu_count": os.cpu_count(),
        "load_average_start": load_start,
        "load_average_end": os.getloadavg(),
        "librosa": librosa.__version__,
        "music": str(args.music),
        "sample_rate": args.sample_rate,
        "seconds_per_track": args.seconds,
        "tolerance_seconds": 0.07,
        "rows": rows,
        "means": means,
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    path = args.results_dir / f"beats-{now:%Y-%m-%d}-{platform.node()}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
