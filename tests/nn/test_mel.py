"""nn.mel.LogMel: frame count, where a tone lands, and level in log units."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helius.audio.features import hz_to_mel
from helius.nn.mel import LOG_FLOOR, LogMel


def test_a_tone_lands_in_the_mel_band_of_its_frequency():
    rate, hz = 22050, 1000.0
    mel = LogMel(rate, n_fft=1024, hop_length=256, n_mels=64)
    t = torch.arange(rate) / rate
    frames = mel(torch.sin(2 * torch.pi * hz * t).unsqueeze(0))
    assert frames.shape == (1, 64, rate // 256 + 1)
    # Band centres are evenly spaced in mel between 0 and Nyquist (independent of the code).
    centres = np.linspace(0, hz_to_mel(rate / 2), 64 + 2)[1:-1]
    expected = int(np.argmin(np.abs(centres - hz_to_mel(hz))))
    assert abs(int(frames[0, :, 10:-10].mean(dim=1).argmax()) - expected) <= 1


def test_halving_the_amplitude_lowers_every_band_by_log_two():
    mel = LogMel(16000, n_fft=512, hop_length=128, n_mels=40)
    noise = torch.randn(1, 16000, generator=torch.Generator().manual_seed(0)) * 0.1
    loud, quiet = mel(noise), mel(noise / 2)
    assert torch.allclose(loud - quiet, torch.full_like(loud, float(np.log(2))), atol=1e-4)


def test_silence_reads_as_the_floor_and_stereo_is_averaged():
    mel = LogMel(16000, n_fft=512, hop_length=128, n_mels=40)
    assert torch.allclose(mel(torch.zeros(2, 4000)), torch.tensor(float(np.log(LOG_FLOOR))))
    mono = torch.randn(1, 4000, generator=torch.Generator().manual_seed(1))
    stereo = torch.stack([mono, mono], dim=1)
    assert torch.allclose(mel(stereo), mel(mono), atol=1e-5)
    with pytest.raises(ValueError, match="hop_length"):
        LogMel(16000, n_fft=512, hop_length=1024)
