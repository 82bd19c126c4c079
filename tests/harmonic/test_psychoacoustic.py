import pytest
import torch

from helius.harmonic.psychoacoustic import hz_to_bark, schroeder_spreading_db


def test_schroeder_spreading_matches_hand_computed_values():
    # Hand-computed from 15.81 + 7.5 (dz + 0.474) - 17.5 sqrt(1 + (dz + 0.474)^2).
    delta = torch.tensor([0.0, 1.0, -1.0, 3.0, -3.0], dtype=torch.float64)
    expected = torch.tensor([-0.0014, -4.306, -7.908, -21.399, -50.678], dtype=torch.float64)
    assert torch.allclose(schroeder_spreading_db(delta), expected, atol=2e-3)


def test_bark_of_known_frequencies():
    bark = hz_to_bark(torch.tensor([0.0, 1000.0], dtype=torch.float64))
    assert abs(bark[0].item()) < 1e-9
    assert abs(bark[1].item() - 8.51) < 0.05


def test_quiet_band_next_to_loud_one_weighs_less_than_alone():
    from helius.harmonic.psychoacoustic import masking_weights

    freqs = torch.linspace(200.0, 4000.0, 32)
    alone = torch.full((1, 32, 1), -12.0)
    alone[0, 16, 0] = -3.0  # a quiet tone
    crowded = alone.clone()
    crowded[0, 15, 0] = 3.0  # a loud neighbour just below it
    w_alone = masking_weights(alone, freqs)[0, 16, 0]
    w_crowded = masking_weights(crowded, freqs)[0, 16, 0]
    assert w_crowded < w_alone


def test_harmonicity_prefers_energy_on_the_targets_harmonics():
    from helius.harmonic.psychoacoustic import harmonicity_loss

    freqs = torch.linspace(50.0, 2000.0, 400)
    bins_on = [int(torch.argmin((freqs - 200.0 * k).abs())) for k in (1, 2, 3, 4)]
    bins_off = [int(torch.argmin((freqs - 200.0 * (k + 0.5)).abs())) for k in (1, 2, 3, 4)]
    target = torch.full((1, 400, 1), -10.0)
    target[0, bins_on, 0] = torch.tensor([0.0, -0.5, -1.0, -1.5])
    shifted = torch.full((1, 400, 1), -10.0)
    shifted[0, bins_off, 0] = torch.tensor([0.0, -0.5, -1.0, -1.5])
    assert harmonicity_loss(target, target, freqs) < 0.05
    assert harmonicity_loss(shifted, target, freqs) > 0.9


def test_harmonicity_stays_finite_for_levels_exp_cannot_hold():
    """Early in training a decoder can put out log-mel levels whose exp() overflows float32
    (exp(100)^2 = inf) or underflows to 0; the loss and its gradient must stay finite."""
    from helius.harmonic.psychoacoustic import harmonicity_loss

    freqs = torch.linspace(50.0, 2000.0, 64)
    target = torch.randn(2, 64, 5, generator=torch.Generator().manual_seed(0))
    for level in (100.0, -200.0):
        predicted = torch.full((2, 64, 5), level) + target
        predicted.requires_grad_(True)
        loss = harmonicity_loss(predicted, target, freqs)
        loss.backward()
        assert torch.isfinite(loss) and 0.0 <= float(loss) <= 1.0
        assert torch.isfinite(predicted.grad).all()
        # Adding a constant to every band changes no band's share of the power.
        assert float(loss) == pytest.approx(
            float(harmonicity_loss(target, target, freqs)), abs=1e-5
        )
