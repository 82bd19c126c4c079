"""PQMF: near-perfect reconstruction, band layout, identity at one band, exact streaming."""

from __future__ import annotations

import math

import pytest
import torch

from helius.errors import ConfigError
from helius.nn.pqmf import PQMF
from helius.nn.streaming import set_streaming


def _noise(samples: int, channels: int = 1, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(2, channels, samples, generator=generator)


def _snr_db(reference: torch.Tensor, estimate: torch.Tensor) -> float:
    error = (estimate - reference).pow(2).sum()
    return float(10 * torch.log10(reference.pow(2).sum() / error))


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("bands", [2, 4, 8, 16])
def test_analysis_synthesis_reconstructs_noise_above_60_db(bands: int, causal: bool) -> None:
    pqmf = PQMF(bands, causal=causal)
    x = _noise(8192, channels=2)
    y = pqmf.synthesis(pqmf.analysis(x))
    assert y.shape == x.shape
    delay = pqmf.delay_samples
    assert delay == (pqmf.taps - bands if causal else 0)
    # Compare y against x delayed by the bank's delay, away from the zero-padded ends.
    edge = pqmf.taps
    reference = x[..., edge : x.shape[-1] - delay - edge]
    estimate = y[..., delay + edge : y.shape[-1] - edge]
    assert _snr_db(reference, estimate) > 60.0


def test_one_band_is_the_identity() -> None:
    pqmf = PQMF(1)
    x = _noise(100)
    assert torch.equal(pqmf.analysis(x), x)
    assert torch.equal(pqmf.synthesis(x), x)
    assert pqmf.delay_samples == 0


def test_bands_are_critically_sampled_and_channel_major() -> None:
    bands, sample_rate = 4, 16000
    pqmf = PQMF(bands)
    t = torch.arange(4096) / sample_rate
    band_width_hz = sample_rate / 2 / bands
    # Left channel: a sine in the middle of band 1; right channel: one in band 3.
    left = torch.sin(2 * math.pi * 1.5 * band_width_hz * t)
    right = torch.sin(2 * math.pi * 3.5 * band_width_hz * t)
    y = pqmf.analysis(torch.stack([left, right])[None])
    assert y.shape == (1, 2 * bands, 4096 // bands)
    energy = y[0, :, 200:-200].pow(2).sum(dim=-1)
    assert int(energy[:bands].argmax()) == 1
    assert int(energy[bands:].argmax()) == 3


@pytest.mark.parametrize("chunk_samples", [16, 48, 256])
def test_causal_bank_streams_exactly(chunk_samples: int) -> None:
    pqmf = PQMF(8, causal=True)
    x = _noise(1536)
    offline = pqmf.synthesis(pqmf.analysis(x))
    set_streaming(pqmf, True)
    pieces = [
        pqmf.synthesis(pqmf.analysis(x[..., start : start + chunk_samples]))
        for start in range(0, x.shape[-1], chunk_samples)
    ]
    assert torch.allclose(torch.cat(pieces, dim=-1), offline, atol=1e-6)


def test_non_causal_bank_refuses_to_stream() -> None:
    with pytest.raises(ConfigError, match="causal"):
        set_streaming(PQMF(4, causal=False), True)


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="bands"):
        PQMF(3)
    with pytest.raises(ValueError, match="multiple of 4"):
        PQMF(4).analysis(torch.zeros(1, 1, 10))
    with pytest.raises(ValueError, match="taps"):
        PQMF(4, taps=64)
