"""The shared attention module against a reference written out by hand, frame by frame."""

from __future__ import annotations

import math

import pytest
import torch

from helius.nn.attention import (
    SelfAttention,
    TransformerBlock,
    attention_mask,
    empty_cache,
    rotary,
)

WIDTH, HEADS = 16, 2


def test_rotary_scores_depend_on_the_position_difference_only() -> None:
    torch.manual_seed(0)
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)

    def score(query_at: int, key_at: int) -> float:
        rotated_q = rotary(q, torch.tensor([query_at]))
        rotated_k = rotary(k, torch.tensor([key_at]))
        return float((rotated_q * rotated_k).sum())

    assert score(5, 2) == pytest.approx(score(103, 100), abs=1e-4)
    assert score(5, 2) != pytest.approx(score(5, 4), abs=1e-3)
    # A rotation keeps lengths; position 0 is the identity.
    assert float(rotary(q, torch.tensor([37])).norm()) == pytest.approx(float(q.norm()), rel=1e-5)
    torch.testing.assert_close(rotary(q, torch.tensor([0])), q)


def test_rotary_turns_the_first_pair_by_the_position_in_radians() -> None:
    x = torch.zeros(1, 1, 1, 4)
    x[..., 0] = 1.0  # the pair (channel 0, channel 2) turns at frequency base^0 = 1
    turned = rotary(x, torch.tensor([1]))
    assert float(turned[..., 0]) == pytest.approx(math.cos(1.0), abs=1e-6)
    assert float(turned[..., 2]) == pytest.approx(math.sin(1.0), abs=1e-6)


def test_masks_causal_local_and_bidirectional() -> None:
    causal_local = attention_mask(3, 2, 3, True, torch.device("cpu"))
    # Queries at positions 2, 3, 4 over keys 0..4, each seeing itself and 2 frames back.
    expected = torch.tensor([[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1]], dtype=torch.bool)
    assert torch.equal(causal_local, expected)
    assert torch.equal(
        attention_mask(3, 0, 0, True, torch.device("cpu")), torch.ones(3, 3).tril().bool()
    )
    assert attention_mask(3, 0, 0, False, torch.device("cpu")).all()
    local = attention_mask(4, 0, 2, False, torch.device("cpu"))
    assert torch.equal(local, (torch.arange(4)[:, None] - torch.arange(4)).abs() < 2)


def _reference(attention: SelfAttention, x: torch.Tensor, window: int) -> torch.Tensor:
    """Attention written out query by query: softmax over the keys the window allows."""
    batch, frames, _ = x.shape
    q, k, v = attention.qkv(x).chunk(3, dim=-1)
    heads, width = attention.heads, attention.head_width

    def split(t):
        return rotary(t.view(batch, frames, heads, width).transpose(1, 2), torch.arange(frames))

    q, k = split(q), split(k)
    v = v.view(batch, frames, heads, width).transpose(1, 2)
    out = torch.zeros_like(q)
    for i in range(frames):
        first = max(0, i - window + 1)
        scores = (q[:, :, i : i + 1] @ k[:, :, first : i + 1].transpose(-1, -2)) / math.sqrt(width)
        out[:, :, i] = (scores.softmax(-1) @ v[:, :, first : i + 1])[:, :, 0]
    return attention.out(out.transpose(1, 2).reshape(batch, frames, -1))


def test_whole_sequence_and_frame_by_frame_match_the_reference() -> None:
    torch.manual_seed(1)
    attention = SelfAttention(WIDTH, HEADS).eval()
    x = torch.randn(2, 9, WIDTH)
    window = 4
    expected = _reference(attention, x, window)
    empty = empty_cache(2, HEADS, WIDTH // HEADS, x)
    whole, _, _ = attention(x, empty, empty, 0, window)
    torch.testing.assert_close(whole, expected, atol=1e-5, rtol=1e-5)
    keys = values = empty
    pieces = []
    for start, stop in ((0, 1), (1, 4), (4, 5), (5, 9)):  # uneven chunks, cache carried
        y, keys, values = attention(x[:, start:stop], keys, values, start, window)
        pieces.append(y)
        assert keys.shape[2] == min(stop, window - 1)  # never more than a query can see
    torch.testing.assert_close(torch.cat(pieces, dim=1), expected, atol=1e-5, rtol=1e-5)


def test_non_causal_attention_refuses_a_cache() -> None:
    attention = SelfAttention(WIDTH, HEADS, causal=False)
    x = torch.randn(1, 3, WIDTH)
    cache = torch.zeros(1, HEADS, 2, WIDTH // HEADS)
    with pytest.raises(ValueError, match="cache"):
        attention(x, cache, cache, 2, 0)


def test_block_scripts_and_matches_eager() -> None:
    torch.manual_seed(2)
    block = TransformerBlock(WIDTH, HEADS).eval()
    scripted = torch.jit.script(block)
    x = torch.randn(1, 5, WIDTH)
    empty = empty_cache(1, HEADS, WIDTH // HEADS, x)
    eager_out = block(x, empty, empty, 3, 4)
    script_out = scripted(x, empty, empty, 3, 4)
    for a, b in zip(eager_out, script_out, strict=True):
        torch.testing.assert_close(a, b)


def test_block_loads_checkpoints_with_the_projections_on_the_block() -> None:
    torch.manual_seed(3)
    block = TransformerBlock(WIDTH, HEADS)
    old_names = {
        key.replace("attention.", "", 1) if key.startswith("attention.") else key: value
        for key, value in block.state_dict().items()
    }
    assert "qkv.weight" in old_names and "out.bias" in old_names
    fresh = TransformerBlock(WIDTH, HEADS)
    fresh.load_state_dict(old_names)
    torch.testing.assert_close(fresh.attention.qkv.weight, block.attention.qkv.weight)
