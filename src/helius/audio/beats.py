"""Beat and bar grids of music: beat times, which beats start bars, and their positions in
analysis frames (tracked from audio by `track_beats`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from helius.errors import DataError

# Below this the tracker has too few beats to settle on a tempo (3 s: 6 beats at 120 BPM).
MIN_SECONDS = 3.0
# -80 dBFS RMS: dither and codec noise stay below it, the quietest real music does not.
SILENCE_RMS = 1e-4
# A frame whose mean log-mel rise exceeds ONSET_DB is an onset, and a pulse needs MIN_ONSETS:
# steady noise and held or vibrato tones stay near 1 dB, drums and music reach 10-30 dB.
ONSET_DB = 3.0
MIN_ONSETS = 4
BASS_HZ = 200.0  # kick drums and bass notes live below this
N_MELS = 128
# Chosen on the Planet Blupi MIDI/OGG pairs (bench/beats.py), where the beat phase, not the
# tempo, goes wrong: loud off-beat snares and hi-hats pull the tracker half a beat off, and
# librosa's default tightness (100) lets it hop between on- and off-beats.
TIGHTNESS = 300.0
# Frame-wise tempo estimates jump to other metrical levels (2x, 4/3x) for seconds at a time in
# music whose tempo never changes: the local tempo stays within TEMPO_BAND of the global one,
# median-smoothed over long enough to drop such jumps, short enough to follow a new section.
TEMPO_BAND = 2**0.5
TEMPO_SMOOTH_SECONDS = 16.0
HARMONY_WEIGHT = 4.0  # of chroma novelty next to onset strength in the beat evidence
# Fractions of a beat a stretch of beats may move by to put chord changes on beats, the beats
# over which that evidence is averaged, and the cost of switching.
PHASES = (0.0, 1 / 3, 1 / 2, 2 / 3)
PHASE_BEATS = 16
PHASE_SWITCH_COST = 5.0
# Downbeat cues (onset, bass onset, chroma change): in those MIDI files chords change most on
# beat 1 in every song, kicks and bass notes do not, so onsets only break ties.
DOWNBEAT_WEIGHTS = (0.25, 0.25, 1.0)


class NoBeatsError(DataError, ValueError):
    """The audio has no beats to track: it is silent, too short or has no onsets."""


@dataclass(frozen=True)
class BeatGrid:
    """Beat times in seconds (increasing) and the index of the first beat that starts a bar;
    every `beats_per_bar`-th beat from it starts a bar. Tempo may change from beat to beat."""

    beats_seconds: np.ndarray
    first_downbeat: int = 0
    beats_per_bar: int = 4

    def __post_init__(self) -> None:
        beats = np.asarray(self.beats_seconds, dtype=np.float64)
        if beats.ndim != 1 or (len(beats) > 1 and np.any(np.diff(beats) <= 0)):
            raise ValueError("beats_seconds must be a 1-D increasing array of times")
        if self.beats_per_bar < 1:
            raise ValueError(f"beats_per_bar must be >= 1, got {self.beats_per_bar}")
        if len(beats) and not 0 <= self.first_downbeat < min(len(beats), self.beats_per_bar):
            raise ValueError(
                f"first_downbeat {self.first_downbeat} must be in 0..{self.beats_per_bar - 1}"
            )
        object.__setattr__(self, "beats_seconds", beats)

    @property
    def downbeats_seconds(self) -> np.ndarray:
        """Times of the beats that start bars."""
        return self.beats_seconds[self.first_downbeat :: self.beats_per_bar]

    @property
    def tempo_bpm(self) -> np.ndarray:
        """Local tempo at each beat, from the interval to the next beat (the last beat keeps
        the interval before it); empty with fewer than two beats."""
        if len(self.beats_seconds) < 2:
            return np.zeros(0)
        intervals = np.diff(self.beats_seconds)
        return 60.0 / np.append(intervals, intervals[-1])

    def bars(self) -> np.ndarray:
        """(N, 2) start and end seconds of each whole bar, from one downbeat to the next (beats
        before the first downbeat and after the last one are not in a whole bar)."""
        downbeats = self.downbeats_seconds
        return np.stack([downbeats[:-1], downbeats[1:]], axis=1).reshape(-1, 2)

    def beat_frames(self, sample_rate: int, hop_samples: int) -> np.ndarray:
        """Beat positions as analysis frame indices (frame k starts at k * hop_samples)."""
        return np.round(self.beats_seconds * sample_rate / hop_samples).astype(np.int64)

    def downbeat_frames(self, sample_rate: int, hop_samples: int) -> np.ndarray:
        return self.beat_frames(sample_rate, hop_samples)[self.first_downbeat :: self.beats_per_bar]


def track_beats(
    audio: np.ndarray, sample_rate: int, beats_per_bar: int = 4, hop_samples: int = 512
) -> BeatGrid:
    """The beat grid of `audio` ((T,) mono or (C, T), channels averaged) at `sample_rate`.

    Beats: librosa's dynamic-programming beat tracker (one frame per `hop_samples`) on a
    log-mel spectral-flux onset envelope, steered by a local tempo per frame (see TEMPO_BAND),
    so the grid is the tracked beat times and follows tempo changes. A second pass adds chroma
    novelty (one beat either side) to the evidence, as chords change on beats more than off
    them; then each stretch of beats moves to the phase in PHASES whose beats have the largest
    chroma change (a Viterbi path over phases).

    Downbeats: each phase p in 0..beats_per_bar-1 proposes that beats p, p + beats_per_bar, ...
    start bars. Each beat gets three cues, standardised over all beats: how much the chroma
    after it differs from the chroma before it (harmony changes on bar lines) and, to break
    ties, the onset and bass (< BASS_HZ) onset strength at it, weighted by DOWNBEAT_WEIGHTS.
    The phase with the highest mean weighted cue sum wins. One phase holds for the whole grid,
    so a beat the tracker drops or adds shifts the later bars.

    Raises NoBeatsError (a DataError and a ValueError) on audio shorter than MIN_SECONDS,
    silent audio (RMS below SILENCE_RMS) or audio with fewer than MIN_ONSETS onsets.
    """
    import librosa  # imported here: it takes a second or two, and only beat tracking needs it

    if beats_per_bar < 1 or hop_samples < 1 or sample_rate < 1:
        raise ValueError(
            f"beats_per_bar, hop_samples and sample_rate must be >= 1, "
            f"got {beats_per_bar}, {hop_samples}, {sample_rate}"
        )
    mono = _mono(audio, sample_rate)
    n_fft = 4 * hop_samples
    power = np.abs(librosa.stft(mono, n_fft=n_fft, hop_length=hop_samples)) ** 2
    mel_db = librosa.power_to_db(
        librosa.feature.melspectrogram(S=power, sr=sample_rate, n_mels=N_MELS)
    )
    # center=False: librosa's centring shift puts onsets ~2 frames late on centred frames.
    flux = {"sr": sample_rate, "hop_length": hop_samples, "n_fft": n_fft, "center": False}
    onset = librosa.onset.onset_strength(S=mel_db, **flux)
    bass_rows = librosa.mel_frequencies(N_MELS + 2, fmax=sample_rate / 2)[1:-1] < BASS_HZ
    bass = librosa.onset.onset_strength(S=mel_db[bass_rows], **flux)
    chroma = librosa.feature.chroma_stft(S=power, sr=sample_rate, tuning=0.0)

    edge = n_fft // hop_samples + 1  # the STFT's padding makes clicks this close to either end
    above = onset[edge:-edge] > ONSET_DB
    if (onsets := int(np.sum(above[1:] & ~above[:-1]) + above[:1].sum())) < MIN_ONSETS:
        raise NoBeatsError(f"audio has {onsets} onset(s): no pulse (a held tone, steady noise?)")
    evidence = _scaled(onset)
    # trim=False: librosa's trim drops every leading beat below the beats' RMS score, count-ins
    # and first bars included; silence around the music gets no beats either way.
    track = {"sr": sample_rate, "hop_length": hop_samples, "tightness": TIGHTNESS, "trim": False}
    bpm = _local_tempo(evidence, sample_rate, hop_samples)
    frames = librosa.beat.beat_track(onset_envelope=evidence, bpm=bpm, **track)[1]
    if len(frames) < 2:
        raise NoBeatsError(f"found {len(frames)} beat(s): the audio has no steady pulse")
    novelty = _scaled(_novelty(chroma, int(np.median(np.diff(frames)))))
    frames = librosa.beat.beat_track(
        onset_envelope=evidence + HARMONY_WEIGHT * novelty, bpm=bpm, **track
    )[1]
    frames = _rephase(frames, chroma)
    first = downbeat_phase(frames, onset, bass, chroma, beats_per_bar)
    times = librosa.frames_to_time(frames, sr=sample_rate, hop_length=hop_samples)
    return BeatGrid(times, first, beats_per_bar)


def downbeat_phase(
    frames: np.ndarray, onset: np.ndarray, bass: np.ndarray, chroma: np.ndarray, beats_per_bar: int
) -> int:
    """The phase p (0 <= p < beats_per_bar) whose beats best mark bar starts (see
    `track_beats`): frames are beat frames, onset and bass (F,) envelopes, chroma (12, F)."""
    cues = [_peak_at(onset, frames), _peak_at(bass, frames), _chroma_change(chroma, frames)]
    score = sum(w * _standardise(c) for w, c in zip(DOWNBEAT_WEIGHTS, cues, strict=True))
    phases = range(min(beats_per_bar, len(frames)))
    return int(np.argmax([score[p::beats_per_bar].mean() for p in phases]))


def _mono(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """(T,) float32 audio, channels averaged, checked for length and silence."""
    samples = np.asarray(audio, dtype=np.float32)
    if samples.ndim == 2:
        samples = samples.mean(axis=0)
    if samples.ndim != 1:
        raise ValueError(f"audio must be (T,) or (C, T), got shape {np.shape(audio)}")
    if not np.all(np.isfinite(samples)):
        raise ValueError("audio contains NaN or infinite samples")
    seconds = len(samples) / sample_rate
    if seconds < MIN_SECONDS:
        raise NoBeatsError(f"audio is {seconds:.2f} s long; beat tracking needs {MIN_SECONDS} s")
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    if rms < SILENCE_RMS:
        raise NoBeatsError(f"audio is silent (RMS {rms:.2g}): no beats to track")
    return samples


def _local_tempo(onset: np.ndarray, sample_rate: int, hop_samples: int) -> np.ndarray:
    """Tempo (BPM) per frame: the tempogram's best within TEMPO_BAND of the global tempo,
    median-smoothed over TEMPO_SMOOTH_SECONDS."""
    import librosa
    import scipy.ndimage
    import scipy.stats

    rate = {"sr": sample_rate, "hop_length": hop_samples}
    window = int(librosa.time_to_frames(8.0, **rate))  # librosa's own tempo window (ac_size)
    tempogram = librosa.feature.tempogram(onset_envelope=onset, win_length=window, **rate)
    overall = float(librosa.feature.tempo(tg=tempogram, **rate)[0])
    band = scipy.stats.uniform(overall / TEMPO_BAND, overall * (TEMPO_BAND - 1 / TEMPO_BAND))
    local = librosa.feature.tempo(tg=tempogram, aggregate=None, prior=band, **rate)
    width = int(TEMPO_SMOOTH_SECONDS * sample_rate / hop_samples) | 1
    return scipy.ndimage.median_filter(local, width, mode="nearest")


def _rephase(frames: np.ndarray, chroma: np.ndarray) -> np.ndarray:
    """The beat frames, each stretch moved by the fraction of a beat in PHASES that puts the
    largest chroma changes on its beats (a Viterbi path that pays PHASE_SWITCH_COST to switch)."""
    import scipy.ndimage

    intervals = np.diff(frames, append=2 * frames[-1] - frames[-2])
    shifted = np.round([frames + f * intervals for f in PHASES]).astype(np.int64)
    shifted = np.minimum(shifted, chroma.shape[1] - 1)
    change = _standardise(np.array([_chroma_change(chroma, beats) for beats in shifted]))
    evidence = scipy.ndimage.uniform_filter1d(change, PHASE_BEATS, axis=1, mode="nearest")
    total, back = evidence[:, 0], np.zeros(evidence.shape, dtype=np.int64)
    switch = PHASE_SWITCH_COST * (1 - np.eye(len(PHASES)))
    for beat in range(1, evidence.shape[1]):
        options = total[:, None] - switch  # row: phase before, column: phase after
        back[:, beat] = np.argmax(options, axis=0)
        total = options.max(axis=0) + evidence[:, beat]
    path = [int(np.argmax(total))]
    for beat in range(evidence.shape[1] - 1, 0, -1):
        path.append(int(back[path[-1], beat]))
    return np.unique(shifted[path[::-1], np.arange(len(frames))])


def _peak_at(envelope: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """The envelope's maximum within one frame of each beat (the tracker may sit one off)."""
    padded = np.pad(envelope, 1)
    return np.max([padded[frames], padded[frames + 1], padded[frames + 2]], axis=0)


def _scaled(values: np.ndarray) -> np.ndarray:  # zero stays zero: silence is no evidence
    return values / max(float(values.std()), 1e-9)


def _standardise(values: np.ndarray) -> np.ndarray:  # a flat cue says nothing: all zeros
    return (values - values.mean()) / max(float(values.std()), 1e-9)


def _chroma_change(chroma: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Per beat, 1 - cosine similarity of the chroma summed from the previous beat (or the
    start) to the beat and from the beat to the next beat (or the end)."""
    edges = np.concatenate([[0], frames, [chroma.shape[1]]])
    return _cosine_distance(chroma, edges[:-2], edges[1:-1], edges[2:])


def _novelty(chroma: np.ndarray, width: int) -> np.ndarray:
    """Per frame, the chroma change between the `width` frames before it and after it."""
    frames, width = np.arange(chroma.shape[1]), max(width, 1)
    ends = np.minimum(frames + width, chroma.shape[1])
    return _cosine_distance(chroma, np.maximum(frames - width, 0), frames, ends)


def _cosine_distance(
    chroma: np.ndarray, lo: np.ndarray, mid: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    """1 - cosine similarity of chroma summed over frames [lo, mid) and over [mid, hi)."""
    # Sums, not means: the cosine does not care about scale, and prefix sums make every span O(1).
    sums = np.concatenate([np.zeros((chroma.shape[0], 1)), np.cumsum(chroma, axis=1)], axis=1)
    before, after = sums[:, mid] - sums[:, lo], sums[:, hi] - sums[:, mid]
    norms = np.linalg.norm(before, axis=0) * np.linalg.norm(after, axis=0)
    # An empty span (the first frame, a beat on the last frame) shows no change, not a total one.
    cosine = np.sum(before * after, axis=0) / np.maximum(norms, 1e-12)
    return np.where(norms > 1e-12, 1.0 - cosine, 0.0)
