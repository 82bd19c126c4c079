"""The editor's vocabulary: pointer tokens and edit operations (the seed's values), and the edit
ops a pointer sequence and its gain curve imply, and the file that holds them.

A pointer sequence gives, for every frame of the edited track, the raw frame it copies (>= 0),
or STOP_TOKEN (the edit ended) or PAD_TOKEN (batch padding). Edit ops label the same frames.
"""

from __future__ import annotations

from enum import IntEnum
from pathlib import Path

import numpy as np

from helius.files import atomic_output

STOP_TOKEN = -2  # end of the output sequence
PAD_TOKEN = -1  # padding for batching

# Gain changes smaller than this between neighbouring frames are not a fade.
FADE_STEP = 1e-3


class EditOp(IntEnum):
    COPY = 0  # copy the frame at the pointer
    LOOP_START = 1  # first frame of a region that is played again
    LOOP_END = 2  # last frame of a loop: the next frame jumps back to its LOOP_START
    SKIP = 3  # the next frame jumps forward (a cut)
    FADE_IN = 4  # gain rising
    FADE_OUT = 5  # gain falling
    STOP = 6  # end of the sequence

    @classmethod
    def names(cls) -> list[str]:
        return [op.name for op in cls]


def ops_from_pointers(pointers: np.ndarray, gains: np.ndarray | None = None) -> np.ndarray:
    """Edit op per edited frame of `pointers` (raw frame indices, optionally ending in
    STOP_TOKEN; PAD_TOKEN frames get PAD_TOKEN) and `gains` (per-frame gain in [0, 1], None:
    all 1).

    Precedence, highest first: STOP; the jump labels (a frame after which the pointer jumps
    back is LOOP_END, and the frame jumped back to is LOOP_START; a frame after which it jumps
    forward is SKIP); FADE_IN / FADE_OUT where the gain rises / falls; else COPY.
    """
    pointers = np.asarray(pointers, dtype=np.int64)
    ops = np.full(pointers.shape, int(EditOp.COPY), dtype=np.int64)
    valid = pointers >= 0
    if gains is not None:
        gains = np.asarray(gains, dtype=np.float64)
        if gains.shape != pointers.shape:
            raise ValueError(f"gains {gains.shape} and pointers {pointers.shape} differ in shape")
        step = np.diff(gains, append=gains[-1:] if len(gains) else gains)
        ops[valid & (step > FADE_STEP)] = int(EditOp.FADE_IN)
        ops[valid & (step < -FADE_STEP)] = int(EditOp.FADE_OUT)
    index = np.flatnonzero(valid[:-1] & valid[1:])
    jumps = pointers[index + 1] - pointers[index]
    ops[index[jumps > 1]] = int(EditOp.SKIP)
    back = index[jumps <= 0]
    ops[back] = int(EditOp.LOOP_END)
    ops[back + 1] = int(EditOp.LOOP_START)
    ops[pointers == STOP_TOKEN] = int(EditOp.STOP)
    ops[pointers == PAD_TOKEN] = PAD_TOKEN
    return ops


def write_pointer_sequence(
    path: Path,
    pointers: np.ndarray,
    ops: np.ndarray,
    gains: np.ndarray,
    hop_samples: int,
    sample_rate: int,
) -> None:
    """A pointer-sequence file (.npz: pointers, ops, gains, hop_samples, sample_rate), written
    atomically; synth writes ground truth in it, align its estimates, training reads both."""
    with atomic_output(path) as tmp_path, tmp_path.open("wb") as handle:
        np.savez(
            handle,
            pointers=pointers,
            ops=ops,
            gains=gains,
            hop_samples=np.int64(hop_samples),
            sample_rate=np.int64(sample_rate),
        )
