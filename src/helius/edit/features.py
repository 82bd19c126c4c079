"""Frame-level work of aligning an edit with its raw track (see `align`): per-frame unit
vectors of log-mel shape and chroma (and of short-window spectra, to place joins) that a gain
change leaves unchanged, how much each frame may count, the jump path through the frames and
its refinement to single frames, and the gain an edit applies to the raw frames it copies.

Frame k describes samples [k * hop, (k + 1) * hop) (the frames of a pointer sequence): its
analysis window is centred on that span. A track of T samples has T // hop frames.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from helius.audio.features import mel_filterbank

# Bands under this share of a frame's loudest band read as that floor (-60 dB for the mel
# magnitudes, -30 dB for the chroma and join powers, whose many weak bins would otherwise be
# noise): the floor moves with the frame's level, so a gain leaves the features as they were.
RELATIVE_FLOOR = 1e-3
ABSOLUTE_FLOOR = 1e-10  # keeps digital silence finite
CHROMA_HZ = (250.0, 5000.0)  # below 250 Hz a 1024-point FFT cannot tell semitones apart
CHUNK_FRAMES = 2048  # STFT frames per block of work, to bound memory on long tracks
ROW_CHUNK = 256  # cost-matrix rows computed per matrix product in the Viterbi pass
NEUTRAL_COST = 0.5  # the cost of an unweighted (quiet) frame, the same at every raw frame
MISSING_COST = 2.0  # the cost of a raw frame beyond the track's ends
GAIN_SMOOTH_FRAMES = 9  # frames whose energies make one gain estimate
MIN_FADE_FRAMES = 8  # shorter dips under the usual level are not fades (but at the ends)
FADE_DEPTH_DB = 6.0  # nor are dips that stay within this of it
FADE_SMOOTH_FRAMES = 15  # the moving average over a fade's gains


@dataclass(frozen=True)
class FrameFeatures:
    """`vectors` (F, D) float32, each row of unit length (cosine = dot product); `level_db`
    (F,) RMS level of each frame's samples in dB re full scale."""

    vectors: np.ndarray
    level_db: np.ndarray

    def __len__(self) -> int:
        return len(self.vectors)

    def pooled(self, size: int, step: int | None = None) -> np.ndarray:
        """(ceil(F / step), D) unit vectors: the mean of the `size` frames from every `step`-th
        frame on (step None: size; frames past the end count as zeros)."""
        step = step or size
        frames, rows = len(self.vectors), -(-len(self.vectors) // step)
        sums = np.zeros((rows * step + size + 1, self.vectors.shape[1]))
        np.cumsum(self.vectors, axis=0, out=sums[1 : frames + 1])
        sums[frames + 1 :] = sums[frames]
        starts = np.arange(rows) * step
        return _unit(sums[starts + size] - sums[starts])


def frame_features(
    audio: np.ndarray,
    sample_rate: int,
    hop: int,
    n_fft: int = 1024,
    n_mels: int = 64,
    chroma_weight: float = 0.25,
) -> FrameFeatures:
    """Features of (T,) mono audio: mean-removed log-mel (`n_mels` bands) and mean-removed log
    chroma, each scaled to unit length, joined with weights 1 - chroma_weight and
    chroma_weight on their cosine."""
    mel = mel_filterbank(sample_rate, n_fft, n_mels, f_min=30.0).astype(np.float32)
    chroma = _chroma_filters(sample_rate, n_fft)
    parts = [np.zeros((0, n_mels + 12), np.float32)]
    for spectrum in _spectra(audio, hop, n_fft):
        shape = _log_shape(spectrum @ mel.T)
        harmony = _log_shape(np.square(spectrum) @ chroma.T)
        weighted = (np.sqrt(1 - chroma_weight) * shape, np.sqrt(chroma_weight) * harmony)
        parts.append(np.concatenate(weighted, axis=1))
    return FrameFeatures(np.concatenate(parts), _levels(audio, hop))


def join_features(audio: np.ndarray, hop: int) -> tuple[FrameFeatures, FrameFeatures]:
    """Features that place joins, (looking back, looking ahead): the mean-removed log spectrum
    of 2 * hop samples ending where each frame ends, and of 2 * hop samples starting where it
    starts. A frame is scored as the end of the segment before a join by the first and as the
    start of the one after by the second, so neither window reaches across the join, where the
    loud attack of a downbeat would outweigh the rest of a window and move the join."""
    back, ahead = ([np.zeros((0, hop + 1), np.float32)] for _ in range(2))
    for parts, lead in ((back, hop), (ahead, 0)):
        parts += [
            _log_shape(np.square(spectrum)) for spectrum in _spectra(audio, hop, 2 * hop, lead)
        ]
    levels = _levels(audio, hop)
    return FrameFeatures(np.concatenate(back), levels), FrameFeatures(np.concatenate(ahead), levels)


def _spectra(
    audio: np.ndarray, hop: int, n_fft: int, lead: int | None = None
) -> Iterator[np.ndarray]:
    """Magnitude spectra (frames, n_fft // 2 + 1) of Hann windows that start `lead` samples
    before each frame (None: centred on the frame), a chunk of frames at a time."""
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    frames = len(audio) // hop
    lead = n_fft // 2 - hop // 2 if lead is None else lead
    window = np.hanning(n_fft + 1)[:-1].astype(np.float32)
    padded = np.pad(audio, (lead, n_fft))
    windows = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop][:frames]
    for start in range(0, frames, CHUNK_FRAMES):
        spectrum = np.abs(np.fft.rfft(windows[start : start + CHUNK_FRAMES] * window, axis=1))
        yield spectrum.astype(np.float32)


def _levels(audio: np.ndarray, hop: int) -> np.ndarray:
    """RMS level (dB re full scale) of each frame's samples."""
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    frames = len(audio) // hop
    power = np.mean(np.square(audio[: frames * hop].reshape(frames, hop), dtype=np.float64), 1)
    return (10 * np.log10(power + 1e-12)).astype(np.float32)


def frame_weights(features: FrameFeatures, quiet_db: float) -> np.ndarray:
    """1 for frames within quiet_db - 10 dB of the track's loud frames, 0 under quiet_db."""
    loud = np.percentile(features.level_db, 95)
    return np.clip((features.level_db - (loud - quiet_db)) / 10.0, 0.0, 1.0).astype(np.float32)


def _log_shape(bands: np.ndarray) -> np.ndarray:
    """(F, B) non-negative band energies -> unit rows of their log, relative floor, mean gone."""
    floor = RELATIVE_FLOOR * bands.max(axis=1, keepdims=True) + ABSOLUTE_FLOOR
    logs = np.log(bands + floor)
    return _unit(logs - logs.mean(axis=1, keepdims=True))


def _unit(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    # A flat row (digital silence) has no shape; it stays zero and matches nothing.
    return (rows / np.maximum(norms, 1e-8)).astype(np.float32)


def _chroma_filters(sample_rate: int, n_fft: int) -> np.ndarray:
    """(12, n_fft // 2 + 1): each FFT bin in CHROMA_HZ shared between its two nearest pitch
    classes by distance in semitones."""
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    filters = np.zeros((12, len(freqs)), np.float32)
    inside = (freqs >= CHROMA_HZ[0]) & (freqs <= CHROMA_HZ[1])
    pitch = 12 * np.log2(freqs[inside] / 440.0) + 69
    for pitch_class in range(12):
        distance = np.abs((pitch - pitch_class + 6) % 12 - 6)
        filters[pitch_class, inside] = np.maximum(0.0, 1.0 - distance)
    return filters


def jump_path(
    edit: FrameFeatures,
    raw: FrameFeatures,
    weights: np.ndarray,
    beats: np.ndarray,
    size: int,
    penalty: float,
    beat_discount: float,
) -> np.ndarray:
    """The raw block each edit block copies (blocks of `size` frames): the least-cost path
    where each edit block's cost is 1 - cosine with its raw block (weighted by `weights`),
    moving on to the next raw block is free and a jump to any other raw block costs `penalty`:
    half for leaving a block, half for landing on one, each half `beat_discount` cheaper at
    the frames of `beats`. A raw block matches by its best phase: the best of the blocks that
    start at each of its frames, as an edit's segment may start at any frame."""
    edit_blocks = edit.pooled(size)
    columns = -(-len(raw) // size)
    phases = np.zeros((columns * size, raw.vectors.shape[1]), np.float32)
    phases[: len(raw)] = raw.pooled(size, 1)
    padded = np.append(weights, np.zeros(-len(weights) % size, np.float32))
    block_weights = padded.reshape(-1, size).mean(axis=1)
    on_beat = np.zeros(columns + 1, bool)
    on_beat[beats // size] = True
    on_beat[np.maximum(beats - 1, 0) // size] = True
    half = 0.5 * penalty
    enter = half * (1 - beat_discount * on_beat[:-1])
    leave = half * (1 - beat_discount * (on_beat[:-1] | on_beat[1:]))
    rows = len(edit_blocks)
    jumped = np.zeros((rows, -(-columns // 8)), np.uint8)
    source = np.zeros(rows, np.int64)
    total = np.zeros(columns)
    diagonal = np.empty(columns)
    for start in range(0, rows, ROW_CHUNK):
        similarity = edit_blocks[start : start + ROW_CHUNK] @ phases.T
        chunk = 1.0 - similarity.reshape(len(similarity), columns, size).max(axis=2)
        w = block_weights[start : start + ROW_CHUNK, None]
        chunk = w * chunk + (1 - w) * NEUTRAL_COST
        for offset, cost in enumerate(chunk):
            row = start + offset
            if row == 0:
                total = cost.astype(np.float64)
                continue
            best = int(np.argmin(total + leave))
            jump = total[best] + leave[best] + enter
            diagonal[0] = np.inf
            diagonal[1:] = total[:-1]
            take_jump = jump < diagonal
            total = np.where(take_jump, jump, diagonal) + cost
            total -= total.min()  # only differences matter; keeps the sums small
            jumped[row] = np.packbits(take_jump)
            source[row] = best
    path = np.zeros(rows, np.int64)
    column = int(np.argmin(total))
    for row in range(rows - 1, 0, -1):
        path[row] = column
        bit = (jumped[row, column // 8] >> (7 - column % 8)) & 1
        column = int(source[row]) if bit else column - 1
    path[0] = column
    return path


def path_segments(path: np.ndarray, size: int, frames: int) -> list[tuple[int, int, int]]:
    """(edit start, edit end, offset) frame segments of a block path, offset = raw - edit."""
    breaks = np.flatnonzero(np.diff(path) != 1) + 1
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks, [len(path)]])
    return [
        (int(s * size), int(min(e * size, frames)), int((path[s] - s) * size))
        for s, e in zip(starts, ends, strict=True)
    ]


def copy_costs(
    edit: FrameFeatures, raw: FrameFeatures, weights: np.ndarray, frames: np.ndarray, offset: int
) -> np.ndarray:
    """Weighted cost of copying raw frame k + offset at edited frame k, for k in `frames`."""
    source = frames + offset
    inside = (source >= 0) & (source < len(raw))
    cosine = np.sum(edit.vectors[frames] * raw.vectors[np.clip(source, 0, len(raw) - 1)], 1)
    w = weights[frames]
    return np.where(inside, w * (1 - cosine) + (1 - w) * NEUTRAL_COST, MISSING_COST)


def refine_segments(
    segments: list[tuple[int, int, int]],
    edit: FrameFeatures,
    raw: FrameFeatures,
    weights: np.ndarray,
    size: int,
    window: int,
    joins: tuple[tuple[FrameFeatures, FrameFeatures], tuple[FrameFeatures, FrameFeatures]]
    | None = None,
) -> list[tuple[int, int, int]]:
    """Segments of a `size`-frame block path made frame-exact: each segment's offset the one
    within a block of its block offset with the least mean cost over the segment's interior,
    neighbours with equal offsets merged, then each join the frame within `window` of it
    where the summed cost of the two offsets is least, by the features `joins` (the edit's
    and the raw's `join_features`; None: `edit` and `raw`)."""
    (edit_back, edit_ahead), (raw_back, raw_ahead) = joins or ((edit, edit), (raw, raw))
    refined = []
    for start, end, offset in segments:
        # Interior frames only: near a join the edit's windows mix the two segments.
        margin = size + 2 if end - start > 4 * (size + 2) else 0
        frames = np.arange(start + margin, end - margin)
        candidates = range(offset - size - 1, offset + size + 2)
        scores = [np.mean(copy_costs(edit, raw, weights, frames, o)) for o in candidates]
        refined.append([start, end, candidates[int(np.argmin(scores))]])
    merged = [refined[0]]
    for segment in refined[1:]:
        if segment[2] == merged[-1][2]:
            merged[-1][1] = segment[1]
        else:
            merged.append(segment)
    for left, right in itertools.pairwise(merged):
        low = max(left[0] + 1, left[1] - window)
        high = min(right[1] - 1, left[1] + window)
        frames = np.arange(low, high)
        before = copy_costs(edit_back, raw_back, weights, frames, left[2])
        after = copy_costs(edit_ahead, raw_ahead, weights, frames, right[2])
        # Join at t: frames [low, t) copy the left offset, [t, high) the right one.
        totals = np.concatenate([[0], np.cumsum(before)]) + np.concatenate(
            [np.cumsum(after[::-1])[::-1], [0]]
        )
        left[1] = right[0] = low + int(np.argmin(totals))
    return [(s, e, o) for s, e, o in merged if e > s]


def frame_gains(
    raw: np.ndarray,
    edit: np.ndarray,
    pointers: np.ndarray,
    hop: int,
    tolerance: float,
    smooth: int = GAIN_SMOOTH_FRAMES,
) -> np.ndarray:
    """(M + 1,) gain at the first sample of each edited frame and at the end, from the level
    of the edit against its raw frames (`_relative_levels`) relative to the edit's usual
    level: 1 there and within its jitter, and in fades (dips at least FADE_DEPTH_DB deep) a
    monotone fit falling to the deepest point and rising after it; never above 1."""
    frames = len(pointers)
    level = _relative_levels(raw, edit, pointers, hop, smooth)
    # Each frame on its own where a fade is fitted: energies summed over neighbours would
    # lift the fade's last, quietest frames.
    own_level = _relative_levels(raw, edit, pointers, hop, 1)
    if level is None or own_level is None:
        return np.ones(frames + 1, np.float32)
    usual = _usual(level)
    level, own_level = level - usual, own_level - usual
    near = np.abs(level)[np.abs(level) < 3.0]
    jitter = float(np.median(near)) if len(near) else 0.0
    band = max(-20 * np.log10(1 - tolerance), 3 * jitter)
    ratio = np.ones(frames)
    edges = np.diff(np.concatenate([[0], (level < -band).astype(int), [0]]))
    for start, end in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
        short = end - start < MIN_FADE_FRAMES and start > 0 and end < frames
        if short or level[start:end].min() > -FADE_DEPTH_DB:
            continue  # the level's jitter (say, a compressor at work), not a fade
        # The fade's first frames lie within the band of the usual level; without jitter
        # they are still below it.
        reach = 3 * jitter + 1e-4
        while start > 0 and level[start - 1] < -reach:
            start -= 1
        while end < frames and level[end] < -reach:
            end += 1
        gain = 10 ** (own_level[start:end] / 20)
        split = int(np.argmin(10 ** (level[start:end] / 20)))
        gain[: split + 1] = _monotone(gain[: split + 1], increasing=False)
        gain[split:] = _monotone(gain[split:], increasing=True)
        # Near the top of a fade its slope drowns in the jitter: the fit there is the
        # plateau the dip began from, which counts as the usual level.
        gain[gain >= 10 ** (-3 * jitter / 20) * max(gain[0], gain[-1])] = 1.0
        ratio[start:end] = np.minimum(gain, 1.0)
    # Frame k's ratio is the gain at its middle; gains are wanted at frame starts.
    gains = np.interp(np.arange(frames + 1), np.arange(frames) + 0.5, ratio)
    if frames > 1:
        gains[0] = ratio[0] - 0.5 * (ratio[1] - ratio[0])
        gains[-1] = ratio[-1] + 0.5 * (ratio[-1] - ratio[-2])
    return np.clip(gains, 0.0, 1.0).astype(np.float32)


def _monotone(values: np.ndarray, increasing: bool) -> np.ndarray:
    """A smooth monotone fit of `values`: the least-squares one (pool adjacent violators),
    drawn through the middle of each run of values it pools, then a moving average."""

    signed = values if increasing else -values
    means: list[float] = []
    sizes: list[int] = []
    for value in signed:
        means.append(float(value))
        sizes.append(1)
        while len(means) > 1 and means[-2] > means[-1]:
            size = sizes[-2] + sizes[-1]
            means[-2] = (means[-2] * sizes[-2] + means[-1] * sizes[-1]) / size
            sizes[-2] = size
            means.pop()
            sizes.pop()
    # Through the middles of the pooled runs rather than flat across each: a flat run would
    # read as no fade at all for the frames in it.
    middles = np.cumsum(sizes) - (np.asarray(sizes) + 1) / 2
    fitted = np.interp(np.arange(len(values)), middles, means)
    # Evened out, as a fade is: a frame's step would otherwise carry the error of its level.
    # The ends are mirrored through their last value, which keeps a straight ramp straight.
    half = min(FADE_SMOOTH_FRAMES // 2, len(fitted) - 1)
    if half > 0:
        head = 2 * fitted[0] - fitted[half:0:-1]
        tail = 2 * fitted[-1] - fitted[-2 : -half - 2 : -1]
        kernel = np.ones(2 * half + 1) / (2 * half + 1)
        fitted = np.convolve(np.concatenate([head, fitted, tail]), kernel, mode="valid")
    return fitted if increasing else -fitted


def _relative_levels(
    raw: np.ndarray, edit: np.ndarray, pointers: np.ndarray, hop: int, smooth: int
) -> np.ndarray | None:
    """(M,) level of each edited frame over its raw frame in dB: energies summed over `smooth`
    frames around it (one frame's ratio jitters when the edit is not sample-exact), then a
    median over 5 (a crossfade disturbs a frame or two). None if every raw frame is silent."""
    from scipy.ndimage import median_filter

    frames = len(pointers)
    edit_energy = np.sum(np.square(edit[: frames * hop].reshape(frames, hop), dtype=np.float64), 1)
    raw_frames = raw[: (len(raw) // hop) * hop].reshape(-1, hop)[pointers]
    raw_energy = np.sum(np.square(raw_frames, dtype=np.float64), 1)
    kernel = np.ones(smooth)
    edit_energy = np.convolve(edit_energy, kernel, mode="same")
    raw_energy = np.convolve(raw_energy, kernel, mode="same")
    known = raw_energy > smooth * hop * 1e-8  # raw RMS under 1e-4 says nothing of the gain
    if not known.any():
        return None
    level = 10 * np.log10(np.maximum(edit_energy[known], 1e-20) / raw_energy[known])
    level = np.interp(np.arange(frames), np.flatnonzero(known), level)
    return median_filter(level, size=5, mode="nearest")


def _usual(level: np.ndarray) -> float:
    """The level most frames share: the median around the fullest 0.5 dB bin (fades spread
    over many levels, so the edit's full-level frames stand out even when fades are long)."""
    level = np.clip(level, -60, 20)
    values, counts = np.unique(np.round(level * 2) / 2, return_counts=True)
    peak = values[np.argmax(counts)]
    return float(np.median(level[np.abs(level - peak) <= 0.5]))
