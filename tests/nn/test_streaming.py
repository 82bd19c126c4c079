"""Cached convolutions and blocks: chunked streaming equals offline; state is per instance."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from helius.errors import ConfigError
from helius.nn.blocks import (
    ACTIVATIONS,
    DownStage,
    FilteredNoise,
    ResidualUnit,
    Snake,
    UpStage,
    make_activation,
)
from helius.nn.streaming import (
    CachedConv1d,
    CachedConvTranspose1d,
    is_streaming,
    reset_streaming_state,
    set_streaming,
)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors gain nothing from threads, and on a busy machine every op of a chunked
    stream would wait for a descheduled worker thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _signal(channels: int, samples: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(2, channels, samples, generator=torch.Generator().manual_seed(seed))


def _chunked(module: nn.Module, x: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """Feed x through `module` in consecutive chunks of the given sizes (cycled)."""
    pieces, start, index = [], 0, 0
    while start < x.shape[-1]:
        size = sizes[index % len(sizes)]
        pieces.append(module(x[..., start : start + size]))
        start, index = start + size, index + 1
    return torch.cat(pieces, dim=-1)


CHUNKINGS = [[1], [2], [7], [16], [3, 1, 8, 5]]


@pytest.mark.parametrize("sizes", CHUNKINGS)
@pytest.mark.parametrize(
    ("kernel", "stride", "dilation"), [(3, 1, 1), (3, 1, 9), (7, 1, 1), (8, 4, 1), (4, 2, 1)]
)
def test_cached_conv_streams_like_offline(
    kernel: int, stride: int, dilation: int, sizes: list[int]
) -> None:
    torch.manual_seed(0)
    conv = CachedConv1d(3, 5, kernel, stride=stride, dilation=dilation, causal=True)
    x = _signal(3, 96)
    offline = conv(x)
    assert offline.shape == (2, 5, 96 // stride)
    set_streaming(conv, True)
    assert torch.allclose(_chunked(conv, x, sizes), offline, atol=1e-6)


@pytest.mark.parametrize("sizes", CHUNKINGS)
@pytest.mark.parametrize(("groups", "dilation"), [(3, 1), (3, 4), (1, 1)])
def test_grouped_and_depthwise_convs_stream_like_offline(
    groups: int, dilation: int, sizes: list[int]
) -> None:
    torch.manual_seed(0)
    conv = CachedConv1d(3, 3, 7, dilation=dilation, groups=groups, causal=True)
    x = _signal(3, 96)
    offline = conv(x)
    set_streaming(conv, True)
    assert (conv.stream_taps.numel() > 0) == (groups == 3)  # depthwise: shifted products
    assert torch.allclose(_chunked(conv, x, sizes), offline, atol=1e-6)


@pytest.mark.parametrize("sizes", CHUNKINGS)
@pytest.mark.parametrize(("kernel", "stride"), [(8, 4), (4, 2), (3, 1), (2, 2)])
def test_cached_transposed_conv_streams_like_offline(
    kernel: int, stride: int, sizes: list[int]
) -> None:
    torch.manual_seed(0)
    conv = CachedConvTranspose1d(4, 3, kernel, stride=stride, causal=True)
    z = _signal(4, 24)
    offline = conv(z)
    assert offline.shape == (2, 3, 24 * stride)
    set_streaming(conv, True)
    assert torch.allclose(_chunked(conv, z, sizes), offline, atol=1e-6)


def test_offline_transposed_conv_matches_torch_up_to_trimming() -> None:
    torch.manual_seed(0)
    for causal, start in [(True, 0), (False, 2)]:
        conv = CachedConvTranspose1d(4, 3, 8, stride=4, causal=causal)
        z = _signal(4, 10)
        full = nn.functional.conv_transpose1d(z, conv.weight, conv.bias, stride=4)
        assert torch.allclose(conv(z), full[..., start : start + 40], atol=1e-6)


def test_causal_conv_ignores_the_future() -> None:
    torch.manual_seed(0)
    conv = CachedConv1d(2, 2, 5, stride=2, dilation=1, causal=True)
    x = _signal(2, 64)
    changed = x.clone()
    changed[..., 40:] += 1.0
    # Frame j sees samples up to 2j + 1, so frames 0..19 only see samples < 40.
    assert torch.equal(conv(x)[..., :20], conv(changed)[..., :20])


def test_non_causal_layers_refuse_to_stream() -> None:
    model = nn.Sequential(CachedConv1d(1, 1, 3, causal=True), CachedConv1d(1, 1, 3))
    with pytest.raises(ConfigError, match="causal=True"):
        set_streaming(model, True)
    assert not is_streaming(model)  # nothing was switched half-way
    with pytest.raises(ConfigError):
        set_streaming(CachedConvTranspose1d(1, 1, 8, stride=4), True)
    set_streaming(CachedConv1d(1, 1, 1), True)  # a 1x1 conv has no lookahead


def test_streaming_is_per_instance() -> None:
    torch.manual_seed(0)
    first = CachedConv1d(1, 1, 3, causal=True)
    second = CachedConv1d(1, 1, 3, causal=True)
    second.load_state_dict(first.state_dict())
    set_streaming(first, True)
    assert is_streaming(first) and not is_streaming(second)
    x = _signal(1, 32)
    first(x[..., :16])
    # The second instance still pads with zeros: its output on the second half differs from
    # the streaming first instance, which remembers the first half.
    assert not torch.allclose(first(x[..., 16:]), second(x[..., 16:]))


def test_reset_makes_a_second_pass_equal_the_first() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        CachedConv1d(1, 4, 4, stride=2, causal=True),
        CachedConvTranspose1d(4, 1, 4, stride=2, causal=True),
    )
    set_streaming(model, True)
    x = _signal(1, 40)
    first = _chunked(model, x, [8])
    assert not torch.allclose(_chunked(model, x, [8]), first)  # state carried over
    reset_streaming_state(model)
    assert torch.allclose(_chunked(model, x, [8]), first, atol=1e-7)


def test_batch_change_mid_stream_is_an_error() -> None:
    conv = CachedConv1d(1, 1, 3, causal=True)
    set_streaming(conv, True)
    conv(torch.zeros(2, 1, 8))
    with pytest.raises(ValueError, match="reset_streaming_state"):
        conv(torch.zeros(3, 1, 8))


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_blocks_stream_like_offline(activation: str) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        ResidualUnit(4, 3, activation, causal=True),
        DownStage(4, 8, 2, [1, 3], activation, causal=True),
        UpStage(8, 4, 2, [1], activation, causal=True),
    )
    x = _signal(4, 64)
    offline = model(x)
    assert offline.shape == x.shape
    set_streaming(model, True)
    assert torch.allclose(_chunked(model, x, [2, 6, 4]), offline, atol=1e-6)


def test_snake_formula_and_gradient() -> None:
    snake = Snake(3)
    with torch.no_grad():
        snake.log_alpha.copy_(torch.tensor([0.0, 1.0, -1.0]).view(1, 3, 1))
    x = torch.linspace(-3, 3, 11).repeat(1, 3, 1).requires_grad_(True)
    alpha = torch.tensor([1.0, torch.e, 1 / torch.e]).view(1, 3, 1)
    expected = x + torch.sin(alpha * x) ** 2 / alpha
    y = snake(x)
    assert torch.allclose(y, expected, atol=1e-6)
    weights = torch.randn(y.shape, generator=torch.Generator().manual_seed(0))
    (y * weights).sum().backward()
    # The hand-written backward equals autograd's derivative of the formula itself.
    log_alpha = snake.log_alpha.detach().clone().requires_grad_(True)
    plain_x = x.detach().clone().requires_grad_(True)
    plain = plain_x + torch.sin(log_alpha.exp() * plain_x) ** 2 / log_alpha.exp()
    (plain * weights).sum().backward()
    assert torch.allclose(x.grad, plain_x.grad, atol=1e-5)
    assert torch.allclose(snake.log_alpha.grad, log_alpha.grad, atol=1e-4)


def test_unknown_activation_is_rejected() -> None:
    with pytest.raises(ValueError, match="snake"):
        make_activation("gelu", 4)


def test_filtered_noise_is_seeded_and_starts_quiet() -> None:
    torch.manual_seed(0)
    noise = FilteredNoise(4, 2, causal=True)
    features = _signal(4, 50)
    torch.manual_seed(1)
    first = noise(features)
    torch.manual_seed(1)
    assert torch.equal(noise(features), first)
    assert first.shape == (2, 2, 50)
    assert 0 < first.abs().max() < 0.1
