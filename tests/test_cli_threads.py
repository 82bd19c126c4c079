"""--threads: block-at-a-time commands default to one thread, training to torch's own default."""

from __future__ import annotations

import argparse

import pytest
import torch

from helius.cli import build_parser
from helius.cli.common import apply_threads


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    [action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


@pytest.mark.parametrize("name", ["stream", "live", "dream", "explore", "recon", "export"])
def test_block_at_a_time_commands_default_to_one_thread(name):
    assert _subcommands()[name].get_default("threads") == 1


@pytest.mark.parametrize("name", ["train", "train-prior", "eval", "demo"])
def test_training_commands_keep_torchs_default_unless_told(name):
    sub = _subcommands()[name]
    assert sub.get_default("threads") is None
    assert any("--threads" in action.option_strings for action in sub._actions)


def test_apply_threads_sets_torch_and_rejects_zero():
    before = torch.get_num_threads()
    try:
        assert apply_threads(argparse.Namespace(threads=1)) == 1
        assert torch.get_num_threads() == 1
        assert apply_threads(argparse.Namespace(threads=None)) is None
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["dream", "--threads", "0"])


def test_the_explorer_picks_its_device_like_training_does():
    # A GPU server must not silently run the explorer on its CPU.
    assert _subcommands()["explore"].get_default("device") == "auto"
