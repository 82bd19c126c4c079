"""Discriminators: one (logits, features) pair per sub-discriminator, shapes worked out by hand,
channels judged as mono signals, weight norm everywhere, float32 STFT under bf16 autocast."""

from __future__ import annotations

import pytest
import torch
from helpers import tiny_discriminator
from torch import nn
from torch.nn.utils import parametrize

from helius.nn.discriminators import (
    CombinedDiscriminator,
    MultiPeriodDiscriminator,
    MultiScaleSTFTDiscriminator,
)

SAMPLES = 2000  # a multiple of neither period, so the fold needs its padding


def _tiny() -> CombinedDiscriminator:
    return tiny_discriminator(0)


def _audio(batch: int, channels: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(batch, channels, SAMPLES, generator=generator)


def test_stft_outputs_have_one_logit_map_per_fft_size_with_halved_frequencies() -> None:
    torch.manual_seed(0)
    discriminator = MultiScaleSTFTDiscriminator(fft_sizes=(128, 64), channels=4)
    outputs = discriminator(_audio(2, 1))
    assert len(outputs) == 2
    for n_fft, (logits, features) in zip((128, 64), outputs, strict=True):
        bins = n_fft // 2 + 1
        frames = SAMPLES // (n_fft // 4) + 1  # centred STFT
        # The input conv keeps the size; three dilated convs each halve the frequency axis
        # (kernel 9, padding 4, stride 2: (f - 1) // 2 + 1); the last conv keeps it.
        halved = [bins]
        for _ in range(3):
            halved.append((halved[-1] - 1) // 2 + 1)
        assert [tuple(f.shape) for f in features] == [
            (2, 4, halved[0], frames),
            (2, 4, halved[1], frames),
            (2, 4, halved[2], frames),
            (2, 4, halved[3], frames),
            (2, 4, halved[3], frames),
        ]
        assert logits.shape == (2, 1, halved[3], frames)


def test_period_outputs_fold_the_padded_waveform_into_period_wide_images() -> None:
    torch.manual_seed(0)
    discriminator = MultiPeriodDiscriminator(periods=(2, 3), channels=4, max_channels=16)
    outputs = discriminator(_audio(2, 1))
    assert len(outputs) == 2
    for period, (logits, features) in zip((2, 3), outputs, strict=True):
        rows = -(-SAMPLES // period)  # padded to whole periods
        for _ in range(4):  # kernel 5, padding 2, stride 3
            rows = (rows - 1) // 3 + 1
        assert len(features) == 5
        assert [f.shape[1] for f in features] == [4, 16, 16, 16, 16]  # 4, 4 * 4, then capped
        assert all(f.shape[-1] == period for f in features)
        assert logits.shape == (2, 1, rows, period)


def test_combined_gives_stft_then_period_outputs() -> None:
    outputs = _tiny()(_audio(3, 1))
    assert len(outputs) == 4
    assert [len(features) for _, features in outputs] == [5, 5, 5, 5]
    assert [logits.shape[-1] for logits, _ in outputs[2:]] == [2, 3]
    assert all(logits.shape[:2] == (3, 1) for logits, _ in outputs)


def test_each_channel_is_judged_as_a_mono_signal() -> None:
    discriminator = _tiny()
    stereo = _audio(2, 2)
    outputs = discriminator(stereo)
    left = discriminator(stereo[:, :1])
    right = discriminator(stereo[:, 1:])
    for (logits, features), (left_logits, _), (right_logits, _) in zip(
        outputs, left, right, strict=True
    ):
        # Item-major: item 0 left, item 0 right, item 1 left, item 1 right.
        assert logits.shape[0] == 4 and features[0].shape[0] == 4
        assert torch.allclose(logits[0::2], left_logits, atol=1e-6)
        assert torch.allclose(logits[1::2], right_logits, atol=1e-6)


def test_a_family_can_be_left_out_but_not_both() -> None:
    only_periods = CombinedDiscriminator(fft_sizes=(), periods=(2,), period_channels=4)
    assert len(only_periods(_audio(1, 1))) == 1
    with pytest.raises(ValueError, match="at least one"):
        CombinedDiscriminator(fft_sizes=(), periods=())


def test_every_convolution_is_weight_normalised_and_the_window_is_not_saved() -> None:
    discriminator = _tiny()
    convs = [m for m in discriminator.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 2 * 6 + 2 * 6  # per sub-discriminator: 5 hidden + 1 logit
    assert all(parametrize.is_parametrized(conv, "weight") for conv in convs)
    assert not any("window" in key for key in discriminator.state_dict())


def test_stft_stays_float32_under_cpu_bf16_autocast() -> None:
    discriminator = _tiny()
    audio = _audio(1, 1)
    reference = discriminator(audio)
    stft = discriminator.stft.discriminators[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        spectrogram = stft.spectrogram(audio[:, :1])
        outputs = discriminator(audio)
    assert spectrogram.dtype == torch.float32
    for (logits, _), (expected, _) in zip(outputs, reference, strict=True):
        assert logits.dtype == torch.bfloat16
        assert torch.isfinite(logits.float()).all()
        scale = expected.abs().max()
        assert (logits.float() - expected).abs().max() < 0.1 * scale


@pytest.mark.skipif(not torch.cuda.is_available(), reason="bf16 autocast is tested on CUDA")
def test_runs_under_cuda_bf16_autocast() -> None:
    discriminator = _tiny().cuda()
    audio = _audio(2, 2).cuda()
    reference = discriminator(audio)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        outputs = discriminator(audio)
    for (logits, features), (expected, _) in zip(outputs, reference, strict=True):
        assert logits.dtype == torch.bfloat16
        assert all(torch.isfinite(f.float()).all() for f in features)
        assert (logits.float() - expected).abs().max() < 0.1 * expected.abs().max()
