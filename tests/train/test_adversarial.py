"""Adversarial losses by hand on constant logits, feature matching, and the `Adversary`: a
discriminator that learns sine from noise, a generator pass that leaves it untouched, exact
resume from its state dict, skipped non-finite steps and DDP wrapping."""

from __future__ import annotations

import pytest
import torch
from helpers import noise, sine, tiny_discriminator

from helius.nn.discriminators import CombinedDiscriminator
from helius.train.adversarial import (
    Adversary,
    discriminator_loss,
    feature_matching_loss,
    generator_loss,
    hinge_discriminator_loss,
    hinge_generator_loss,
    least_squares_discriminator_loss,
    least_squares_generator_loss,
)

SAMPLE_RATE = 16000
SAMPLES = 2048


def _constant(value: float, shape: tuple[int, ...] = (2, 1, 3, 4)):
    """One sub-discriminator output: constant logits, no feature maps."""
    return torch.full(shape, value), []


def _tiny_discriminator(seed: int = 0) -> CombinedDiscriminator:
    return tiny_discriminator(seed)


def _real_and_fake(batch: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed 440 Hz sine as the real audio, white noise of similar level as the fake."""
    seconds = SAMPLES / SAMPLE_RATE
    real = torch.from_numpy(sine(seconds, SAMPLE_RATE, amplitude=0.3)).expand(batch, 1, SAMPLES)
    fake = torch.stack(
        [torch.from_numpy(noise(seconds, SAMPLE_RATE, 0.2, seed=seed + i)) for i in range(batch)]
    )
    return real.contiguous(), fake


# --- losses -----------------------------------------------------------------------------------


def test_hinge_discriminator_loss_by_hand() -> None:
    # Zero logits: relu(1 - 0) + relu(1 + 0) = 2.
    assert float(hinge_discriminator_loss([_constant(0.0)], [_constant(0.0)])) == 2.0
    # Past both margins: nothing left to learn.
    assert float(hinge_discriminator_loss([_constant(2.0)], [_constant(-3.0)])) == 0.0
    # real 0.5 -> 0.5, fake -0.25 -> 0.75.
    assert float(hinge_discriminator_loss([_constant(0.5)], [_constant(-0.25)])) == 1.25


def test_generator_losses_average_sub_discriminators_not_elements() -> None:
    # A small map scoring fakes 0 (loss 1) and a large one scoring them 3 (loss 0): the mean over
    # sub-discriminators is 0.5, where a mean over all 2 + 60 logits would be 2 / 62.
    fakes = [_constant(0.0, (1, 1, 2, 1)), _constant(3.0, (1, 1, 6, 10))]
    assert float(hinge_generator_loss(fakes)) == 0.5
    # (0 - 1)^2 = 1 and (3 - 1)^2 = 4.
    assert float(least_squares_generator_loss(fakes)) == 2.5


def test_least_squares_losses_by_hand() -> None:
    # (0.5 - 1)^2 + 0.25^2 = 0.25 + 0.0625
    loss = least_squares_discriminator_loss([_constant(0.5)], [_constant(0.25)])
    assert float(loss) == 0.3125
    # (0.25 - 1)^2
    assert float(least_squares_generator_loss([_constant(0.25)])) == 0.5625
    assert float(hinge_generator_loss([_constant(0.25)])) == 0.75


def test_losses_are_selected_by_name_and_unknown_names_list_the_choices() -> None:
    real, fake = [_constant(0.5)], [_constant(0.25)]
    assert float(discriminator_loss(real, fake, "hinge")) == 0.5 + 1.25
    assert float(discriminator_loss(real, fake, "least_squares")) == 0.3125
    assert float(generator_loss(fake, "least_squares")) == 0.5625
    with pytest.raises(ValueError, match="'wasserstein'.*hinge, least_squares"):
        generator_loss(fake, "wasserstein")
    with pytest.raises(ValueError, match="hinge, least_squares"):
        Adversary(_tiny_discriminator(), loss_kind="lsgan")


def test_feature_matching_is_relative_to_the_real_level() -> None:
    real = [(torch.zeros(1), [torch.full((2, 3), 2.0), torch.full((4,), -4.0)])]
    fake = [(torch.zeros(1), [torch.full((2, 3), 3.0), torch.zeros(4)])]
    # Layer 1: |3 - 2| / 2 = 0.5; layer 2: |0 + 4| / 4 = 1; mean 0.75.
    assert float(feature_matching_loss(real, fake)) == 0.75
    assert float(feature_matching_loss(real, real)) == 0.0
    silent = [(torch.zeros(1), [torch.zeros(5)])]
    assert float(feature_matching_loss(silent, silent)) == 0.0  # no 0 / 0


def test_feature_matching_on_a_discriminator_is_zero_only_for_identical_audio() -> None:
    discriminator = _tiny_discriminator()
    real, fake = _real_and_fake()
    with torch.no_grad():
        real_outputs = discriminator(real)
        same = feature_matching_loss(real_outputs, discriminator(real.clone()))
        different = feature_matching_loss(real_outputs, discriminator(fake))
    assert float(same) == 0.0
    assert float(different) > 0.1


# --- the Adversary ----------------------------------------------------------------------------


def test_discriminator_learns_to_tell_a_sine_from_noise() -> None:
    adversary = Adversary(_tiny_discriminator(), learning_rate=1e-3)
    real, _ = _real_and_fake()
    losses = []
    for step in range(50):
        _, fake = _real_and_fake(seed=100 * step)  # fresh noise every step
        losses.append(adversary.discriminator_step(real, fake)["disc_loss"])
    assert losses[0] == pytest.approx(2.0, abs=0.05)  # near-zero logits at the start
    assert losses[-1] < 0.6 * losses[0]
    # Unseen noise: every sub-discriminator scores the sine higher.
    _, fake = _real_and_fake(seed=12345)
    with torch.no_grad():
        real_outputs = adversary.discriminator(real)
        fake_outputs = adversary.discriminator(fake)
    for (real_logits, _), (fake_logits, _) in zip(real_outputs, fake_outputs, strict=True):
        assert real_logits.mean() > fake_logits.mean()


def test_generator_losses_reach_the_fake_audio_but_not_the_discriminator() -> None:
    adversary = Adversary(_tiny_discriminator(), adversarial_weight=0.5, feature_matching_weight=3)
    real, fake = _real_and_fake()
    adversary.discriminator_step(real, fake)  # leaves no gradients behind
    fake = fake.clone().requires_grad_(True)
    total, logs = adversary.generator_losses(real, fake)
    total.backward()
    parameters = list(adversary.discriminator.parameters())
    assert all(parameter.grad is None for parameter in parameters)
    assert all(parameter.requires_grad for parameter in parameters)  # unfrozen again
    assert fake.grad is not None and float(fake.grad.abs().sum()) > 0
    expected = 0.5 * logs["gen_adversarial"] + 3 * logs["gen_feature_matching"]
    assert float(total.detach()) == pytest.approx(expected, rel=1e-5)
    assert logs["gen_feature_matching"] > 0


def test_resuming_from_the_state_dict_continues_bitwise() -> None:
    real, fake = _real_and_fake()
    original = Adversary(_tiny_discriminator(seed=0), learning_rate=1e-3, grad_clip=1.0)
    for step in range(3):
        original.discriminator_step(real, _real_and_fake(seed=step)[1])
    state = original.state_dict()
    resumed = Adversary(_tiny_discriminator(seed=1), learning_rate=1e-3, grad_clip=1.0)
    resumed.load_state_dict(state)
    assert resumed.optimizer.state_dict()["state"]  # the Adam moments came along
    original.discriminator_step(real, fake)
    resumed.discriminator_step(real, fake)
    pairs = zip(
        original.discriminator.state_dict().values(),
        resumed.discriminator.state_dict().values(),
        strict=True,
    )
    assert all(torch.equal(a, b) for a, b in pairs)
    # A discriminator without the restored moments would have moved differently.
    fresh = Adversary(_tiny_discriminator(seed=1), learning_rate=1e-3, grad_clip=1.0)
    fresh.discriminator.load_state_dict(state["discriminator"])
    fresh.discriminator_step(real, fake)
    pairs = zip(
        original.discriminator.state_dict().values(),
        fresh.discriminator.state_dict().values(),
        strict=True,
    )
    assert not all(torch.equal(a, b) for a, b in pairs)


def test_a_non_finite_step_is_skipped() -> None:
    adversary = Adversary(_tiny_discriminator())
    real, fake = _real_and_fake()
    before = {k: v.clone() for k, v in adversary.discriminator.state_dict().items()}
    fake[0, 0, 100] = float("nan")
    logs = adversary.discriminator_step(real, fake)
    assert logs["disc_skipped"] == 1.0
    after = adversary.discriminator.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in adversary.discriminator.parameters())


@pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="torch.distributed with the gloo backend is not available in this torch build",
)
def test_steps_alternate_with_a_ddp_wrapped_discriminator(tmp_path) -> None:
    # The discriminator step goes through the wrapper (one forward, one backward); the generator
    # pass and the state dict use the bare module, so no gradient of the discriminator is
    # all-reduced there and saved keys carry no "module." prefix.
    import torch.distributed as dist

    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        adversary = Adversary(_tiny_discriminator())
        adversary.discriminator = torch.nn.parallel.DistributedDataParallel(adversary.module)
        real, fake = _real_and_fake(batch=2)
        for _ in range(2):
            adversary.discriminator_step(real, fake)
            moving = fake.clone().requires_grad_(True)
            total, _ = adversary.generator_losses(real, moving)
            total.backward()
            assert moving.grad is not None
        assert all(p.grad is None for p in adversary.module.parameters())
        assert "discriminator" in adversary.state_dict()
        assert not any(k.startswith("module.") for k in adversary.state_dict()["discriminator"])
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="bf16 autocast is tested on CUDA")
def test_adversary_under_cuda_bf16_autocast() -> None:
    adversary = Adversary(_tiny_discriminator().cuda(), autocast_dtype=torch.bfloat16)
    real, fake = (tensor.cuda() for tensor in _real_and_fake())
    logs = adversary.discriminator_step(real, fake)
    assert logs["disc_skipped"] == 0.0
    moving = fake.clone().requires_grad_(True)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        total, _ = adversary.generator_losses(real, moving)
    total.backward()
    assert torch.isfinite(total) and torch.isfinite(moving.grad).all()
    assert all(p.dtype == torch.float32 for p in adversary.module.parameters())
