"""The editor's tokens and the edit ops a pointer sequence and gain curve imply."""

from __future__ import annotations

import numpy as np

from helius.edit.ops import PAD_TOKEN, STOP_TOKEN, EditOp, ops_from_pointers


def test_values_are_the_seeds():
    assert (STOP_TOKEN, PAD_TOKEN) == (-2, -1)
    assert EditOp.names() == ["COPY", "LOOP_START", "LOOP_END", "SKIP", "FADE_IN", "FADE_OUT",
                              "STOP"]  # fmt: skip
    assert [int(op) for op in EditOp] == list(range(7))


def test_loops_cuts_fades_and_stop_are_labelled():
    #            fade in  copy  loop back  copy  cut  fade out  stop  pad
    pointers = [0, 1, 2, 3, 2, 3, 4, 8, 9, STOP_TOKEN, PAD_TOKEN]
    gains = [0.0, 0.5, 1, 1, 1, 1, 1, 1, 0.5, 0, 0]
    C, LS, LE, SK, FI, FO, ST = (int(op) for op in EditOp)
    expected = [FI, FI, C, LE, LS, C, SK, FO, FO, ST, PAD_TOKEN]
    assert ops_from_pointers(np.array(pointers), np.array(gains)).tolist() == expected


def test_a_plain_copy_is_all_copy():
    assert set(ops_from_pointers(np.arange(50)).tolist()) == {int(EditOp.COPY)}
