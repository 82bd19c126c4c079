"""VAETask compares a causal model's output with its input after taking out the model's lag."""

from __future__ import annotations

import torch
from helpers import tiny_config
from torch import nn

from helius.models.base import VAEOutput
from helius.train.vae_task import VAETask, aligned

DELAY = 37


class DelayLine(nn.Module):
    """A perfect 'VAE' that returns its input late by DELAY samples, as a causal PQMF does."""

    output_delay_samples = DELAY

    def __init__(self) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor, step: int | None = None) -> VAEOutput:
        late = torch.nn.functional.pad(x, (DELAY, 0))[..., : x.shape[-1]] * self.gain
        mu = torch.zeros(x.shape[0], 2, 4)
        return VAEOutput(audio=late, mu=mu, logvar=torch.zeros_like(mu), z=mu)


def _signals() -> torch.Tensor:
    return torch.randn(2, 1, 4096, generator=torch.Generator().manual_seed(0))


def test_validation_scores_a_late_but_perfect_copy_as_perfect(tmp_path) -> None:
    task = VAETask(tiny_config(tmp_path))
    result = task.validate(DelayLine(), iter([_signals()])).metrics
    assert result["mrstft"] < 1e-4 and result["mel"] < 1e-4
    assert result["si_sdr"] > 60.0  # unaligned, a 37-sample lag of white noise scores < 0 dB


def test_training_loss_of_a_late_copy_is_zero_and_models_without_lag_are_untouched(
    tmp_path,
) -> None:
    task = VAETask(tiny_config(tmp_path, "train.loss.waveform_l1_weight=1.0"))
    _, logs = task.loss(DelayLine(), _signals(), step=0)
    assert logs["recon_wave_l1"] < 1e-6
    x = _signals()
    audio, target = aligned(nn.Linear(1, 1), x + 1, x)
    assert torch.equal(audio, x + 1) and torch.equal(target, x)


def test_a_hop_that_is_not_a_power_of_two_is_flagged_when_the_model_is_built(tmp_path, capsys):
    """nn~ breaks on such hops (#14 item 7): training says so at the start, not at export."""
    from helius import progress

    progress.set_enabled(True)  # the conftest turns status lines off; this one is the point
    VAETask(tiny_config(tmp_path, "model.wave.ratios=[3,2]")).build_model()  # 4 x 6 = 24
    assert "hop is 24 samples, not a power of two" in capsys.readouterr().err
    VAETask(tiny_config(tmp_path)).build_model()  # 4 x 32 = 128
    assert "power of two" not in capsys.readouterr().err
