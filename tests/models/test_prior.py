"""Latent priors: quantized-normal bins, chunked state equals one pass, learning, sampling."""

from __future__ import annotations

import math

import pytest
import torch

from helius.config import PriorConfig
from helius.models.prior import GRUPrior, QuantizedNormal, TransformerPrior, build_prior

KINDS = ("gru", "transformer")


def small(kind: str, **overrides) -> PriorConfig:
    return PriorConfig(kind=kind, hidden_size=16, num_layers=2, heads=2, bins=16, **overrides)


def test_bins_are_equal_probability_and_values_stay_in_their_bin():
    quantizer = QuantizedNormal(8)
    values = torch.randn(200_000, generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(quantizer.to_bins(values), minlength=8).float() / len(values)
    assert torch.allclose(counts, torch.full((8,), 1 / 8), atol=0.005)
    bins = torch.arange(8).repeat(1000)
    drawn = quantizer.from_bins(bins, torch.Generator().manual_seed(1))
    assert torch.equal(quantizer.to_bins(drawn), bins)


def test_build_prior_names_the_kind():
    assert isinstance(build_prior(small("gru"), 4), GRUPrior)
    assert isinstance(build_prior(small("transformer"), 4), TransformerPrior)


@pytest.mark.parametrize("kind", KINDS)
def test_chunks_with_carried_state_equal_one_pass(kind):
    torch.manual_seed(0)
    prior = build_prior(small(kind, context_frames=64), 3).eval()
    frames = torch.randn(2, 40, 3)
    whole, _ = prior(frames)
    state, pieces = None, []
    for begin in range(0, 40, 7):
        logits, state = prior(frames[:, begin : begin + 7], state)
        pieces.append(logits)
    assert torch.allclose(torch.cat(pieces, dim=1), whole, atol=1e-5)


def test_transformer_window_limits_what_a_frame_sees():
    torch.manual_seed(0)
    prior = build_prior(small("transformer", context_frames=4), 2).eval()
    frames = torch.randn(1, 12, 2)
    changed = frames.clone()
    changed[:, 0] += 5.0
    before, _ = prior(frames)
    after, _ = prior(changed)
    # Each of the 2 layers looks 3 frames back, so frame 0 reaches frame 6 and no further.
    assert not torch.allclose(before[:, 6], after[:, 6])
    assert torch.allclose(before[:, 7:], after[:, 7:], atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_learns_a_predictable_sequence(kind):
    torch.manual_seed(0)
    prior = build_prior(small(kind), 2)
    t = torch.arange(65, dtype=torch.float32)
    wave = torch.stack([torch.sin(t * 0.7), torch.cos(t * 0.3)], dim=-1)[None].repeat(4, 1, 1)
    optimizer = torch.optim.Adam(prior.parameters(), lr=1e-2)
    first = None
    for _ in range(150):
        nll, _ = prior(wave[:, :-1], None, wave[:, 1:])
        optimizer.zero_grad()
        nll.backward()
        optimizer.step()
        first = float(nll.detach()) if first is None else first
    uniform = 2 * math.log(16)  # nats per frame of a prior that knows nothing
    assert first == pytest.approx(uniform, rel=0.2)
    assert float(nll) < 0.3 * uniform


def test_sampling_temperature_and_seed():
    prior = build_prior(small("gru"), 3)
    logits = torch.randn(1, 3, 16)
    draw = lambda seed, temperature: prior.sample(  # noqa: E731
        logits, temperature, torch.Generator().manual_seed(seed)
    )
    assert torch.equal(draw(0, 1.0), draw(0, 1.0))
    assert not torch.equal(draw(0, 1.0), draw(1, 1.0))
    assert torch.equal(draw(0, 0.0), draw(5, 0.0))  # temperature 0: the most likely bin
    peaked = prior.quantizer.to_bins(draw(0, 0.0))
    assert torch.equal(peaked, logits.argmax(-1))


def test_standardise_and_restore_are_inverse():
    prior = build_prior(small("gru"), 3)
    prior.set_statistics(torch.tensor([1.0, -2.0, 0.5]), torch.tensor([2.0, 0.5, 1e-6]))
    latents = torch.randn(2, 3, 5)
    frames = prior.standardise(latents)
    assert frames.shape == (2, 5, 3)
    assert torch.allclose(prior.restore(frames), latents, atol=1e-5)
    assert float(prior.latent_std.min()) == pytest.approx(1e-3)  # floored


def test_transformer_width_must_fit_the_heads():
    with pytest.raises(ValueError, match="multiple of"):
        build_prior(PriorConfig(kind="transformer", hidden_size=10, heads=4), 2)
