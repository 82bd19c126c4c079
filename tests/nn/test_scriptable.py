"""The cached layers script with TorchScript themselves (what export and the streaming engine
run): scripted, they give what the Python layers give in streaming mode, with trained-looking
weights (Snake alphas far from 1), for batches of 1 and 2, and a shared counter resets them."""

from __future__ import annotations

import pytest
import torch

from helius.nn.blocks import DownStage, ResidualUnit, UpStage
from helius.nn.streaming import reset_streaming_state, set_streaming, share_reset_counter

pytestmark = pytest.mark.filterwarnings(
    "ignore:`torch.jit.script` is deprecated:DeprecationWarning"
)


def _randomise(module: torch.nn.Module, seed: int) -> None:
    """Every parameter random, Snake log-alphas in [-1.5, 1.5] (alpha 0.2 .. 4.5)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            values = torch.rand(parameter.shape, generator=generator)
            scale = 3.0 if name.endswith("log_alpha") else 0.6
            parameter.copy_(scale * (values - 0.5))


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("activation", ["snake", "leaky_relu"])
@pytest.mark.parametrize(
    ("build", "channels"),
    [
        (lambda activation: ResidualUnit(6, 3, activation, causal=True), 6),
        (lambda activation: DownStage(4, 8, 2, [1, 3], activation, causal=True), 4),
        (lambda activation: UpStage(8, 4, 2, [1, 9], activation, causal=True), 8),
    ],
    ids=["unit", "down", "up"],
)
def test_scripted_layers_stream_like_the_python_layers(
    build, channels: int, activation: str, batch: int
):
    torch.manual_seed(0)
    module = build(activation).eval()
    _randomise(module, seed=1)
    x = torch.randn(batch, channels, 48, generator=torch.Generator().manual_seed(2))
    set_streaming(module, True)
    counter = share_reset_counter(module)
    scripted = torch.jit.script(module)
    with torch.no_grad():
        for step in (8, 4, 12):  # whole hops of every stage here
            reset_streaming_state(module)
            counter.add_(1)  # the scripted copy shares the counter: its layers start afresh
            expected = torch.cat([module(chunk) for chunk in x.split(step, dim=-1)], dim=-1)
            got = torch.cat([scripted(chunk) for chunk in x.split(step, dim=-1)], dim=-1)
            assert got.shape == expected.shape
            assert torch.allclose(got, expected, atol=1e-5), (got - expected).abs().max()


def test_snake_units_stream_fused_and_others_do_not() -> None:
    snake, elu = ResidualUnit(4, 1, "snake", causal=True), ResidualUnit(4, 1, "elu", causal=True)
    set_streaming(snake, True)
    set_streaming(elu, True)
    assert snake.fused_inner.numel() > 0
    assert elu.fused_inner.numel() == 0
    set_streaming(snake, False)
    assert snake.fused_inner.numel() == 0
