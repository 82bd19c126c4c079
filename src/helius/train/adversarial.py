"""Adversarial fine-tuning: GAN and feature-matching losses, and the `Adversary` that trains a
discriminator beside the generator (RAVE's phase 2, as in DAC and EnCodec).

The losses take the outputs of a `helius.nn.discriminators` module: a list with one
`(logits, feature_maps)` pair per sub-discriminator. Every loss is a mean over
sub-discriminators, so adding one (another FFT size, another period) does not change its scale.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from helius.config import AdversarialConfig
from helius.nn.discriminators import CombinedDiscriminator, DiscriminatorOutput

__all__ = [
    "LOSS_KINDS",
    "AdversarialPhase",
    "Adversary",
    "discriminator_loss",
    "feature_matching_loss",
    "generator_loss",
    "hinge_discriminator_loss",
    "hinge_generator_loss",
    "least_squares_discriminator_loss",
    "least_squares_generator_loss",
]

Outputs = Sequence[DiscriminatorOutput]

# Real feature maps smaller than this on average count as this large: a silent layer must not
# turn a tiny difference into a huge relative one.
_FEATURE_FLOOR = 1e-6


def _mean_over(
    outputs: Outputs, per_logits: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    return torch.stack([per_logits(logits.float()) for logits, _ in outputs]).mean()


def hinge_discriminator_loss(real_outputs: Outputs, fake_outputs: Outputs) -> torch.Tensor:
    """Mean over sub-discriminators of mean(relu(1 - D(real))) + mean(relu(1 + D(fake))).

    The hinge stops pushing once a logit is past its margin of 1, so the discriminator spends
    its capacity on the examples it still gets wrong. All-zero logits give 2.
    """
    real = _mean_over(real_outputs, lambda logits: F.relu(1 - logits).mean())
    fake = _mean_over(fake_outputs, lambda logits: F.relu(1 + logits).mean())
    return real + fake


def hinge_generator_loss(fake_outputs: Outputs) -> torch.Tensor:
    """Mean over sub-discriminators of mean(relu(1 - D(fake))), as in EnCodec.

    We take this over the unbounded mean(-D(fake)) (MelGAN, RAVE): it asks the generator to
    have its output scored like real audio (logit >= 1, the discriminator's own target for
    real) and no more, so the generator cannot keep lowering its loss by driving logits ever
    higher where the discriminator happens to be steep; and 0 means "every frame passes".
    """
    return _mean_over(fake_outputs, lambda logits: F.relu(1 - logits).mean())


def least_squares_discriminator_loss(real_outputs: Outputs, fake_outputs: Outputs) -> torch.Tensor:
    """Mean over sub-discriminators of mean((D(real) - 1)^2) + mean(D(fake)^2) (LSGAN)."""
    real = _mean_over(real_outputs, lambda logits: (logits - 1).square().mean())
    fake = _mean_over(fake_outputs, lambda logits: logits.square().mean())
    return real + fake


def least_squares_generator_loss(fake_outputs: Outputs) -> torch.Tensor:
    """Mean over sub-discriminators of mean((D(fake) - 1)^2) (LSGAN, as in HiFi-GAN and DAC)."""
    return _mean_over(fake_outputs, lambda logits: (logits - 1).square().mean())


_LOSSES = {
    "hinge": (hinge_discriminator_loss, hinge_generator_loss),
    "least_squares": (least_squares_discriminator_loss, least_squares_generator_loss),
}
LOSS_KINDS: tuple[str, ...] = tuple(_LOSSES)


def _losses_of(kind: str) -> tuple[Callable[..., torch.Tensor], Callable[..., torch.Tensor]]:
    if kind not in _LOSSES:
        raise ValueError(
            f"unknown adversarial loss {kind!r}; choose one of {', '.join(LOSS_KINDS)}"
        )
    return _LOSSES[kind]


def discriminator_loss(real_outputs: Outputs, fake_outputs: Outputs, kind: str) -> torch.Tensor:
    """The discriminator loss of `kind` ("hinge" or "least_squares")."""
    return _losses_of(kind)[0](real_outputs, fake_outputs)


def generator_loss(fake_outputs: Outputs, kind: str) -> torch.Tensor:
    """The generator's adversarial loss of `kind` ("hinge" or "least_squares")."""
    return _losses_of(kind)[1](fake_outputs)


def feature_matching_loss(real_outputs: Outputs, fake_outputs: Outputs) -> torch.Tensor:
    """Mean over every feature map of mean|fake - real| / mean|real| (real detached).

    Relative, as in EnCodec: early layers have larger activations than late ones, and an
    absolute L1 would let them dominate; divided by its own level every layer counts alike.
    The real features are targets only, so no gradient reaches the discriminator through them.
    """
    terms = []
    for (_, real_features), (_, fake_features) in zip(real_outputs, fake_outputs, strict=True):
        for real, fake in zip(real_features, fake_features, strict=True):
            real = real.detach().float()
            level = real.abs().mean().clamp_min(_FEATURE_FLOOR)
            terms.append((fake.float() - real).abs().mean() / level)
    return torch.stack(terms).mean()


@contextlib.contextmanager
def _frozen(module: nn.Module) -> Iterator[None]:
    """Parameters of `module` do not require grad inside the block (restored afterwards).

    Autograd decides at each op whether to record a parameter, so a graph built inside the
    block never reaches these parameters, even when its backward runs after the block.
    """
    flags = [(parameter, parameter.requires_grad) for parameter in module.parameters()]
    for parameter, _ in flags:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter, flag in flags:
            parameter.requires_grad_(flag)


class Adversary:
    """A discriminator with its own AdamW optimiser, and the losses it sets the generator.

    Each training step the caller
    1. calls `discriminator_step(real, fake)`: one optimiser step of the discriminator on the
       detached fake (a full step per call, whatever the caller's gradient accumulation);
    2. adds the first value of `generator_losses(real, fake)` to its own loss before backward.

    Weights. `generator_losses` returns adversarial_weight * adversarial +
    feature_matching_weight * feature matching, to be added to a multi-resolution STFT loss
    of order 1-5. The defaults (1 and 2) keep HiFi-GAN's and DAC's 1 : 2 ratio of adversarial
    to feature matching, and put both terms on the order of the reconstruction loss, which
    stays the main guide. The feature matching here is relative (each layer's L1 over its
    level): about 1 while fake features are as far from the real ones as they are large,
    a few tenths as the generator closes in, so weighted by 2 it is of order 1. The hinge
    generator loss lies between 0 (every fake frame passes) and about 2 (the discriminator
    rejects every fake at its margin). RAVE's phase 2 has the same shape: an unweighted
    spectral distance + adversarial + a larger weight on feature matching, whose dense,
    low-variance gradient steadies the noisier adversarial one.

    Gradients. The generator's pass runs the discriminator with its parameters frozen
    (requires_grad off while the graph is built), so the generator's backward reaches the fake
    audio through the discriminator but leaves every discriminator `.grad` untouched; no stale
    gradient has to be cleared, and no backward work is spent on discriminator weights.

    DDP. `discriminator` may be replaced by a DistributedDataParallel wrapper of itself after
    construction; `discriminator_step` calls it (one forward on real and fake concatenated,
    then one backward, as DDP expects), so gradients are averaged over ranks. The generator's
    pass and the state dict use the bare module (`module`), which needs no synchronisation:
    its parameters get no gradient there.

    The discriminator's parameters stay in float32; with `autocast_dtype=torch.bfloat16` the
    discriminator step runs its convolutions in bf16 (backward outside the autocast block).
    float16 would need loss scaling, which this class does not do, so it is not supported.
    """

    def __init__(
        self,
        discriminator: nn.Module,
        loss_kind: str = "hinge",
        adversarial_weight: float = 1.0,
        feature_matching_weight: float = 2.0,
        learning_rate: float = 1e-4,
        betas: tuple[float, float] = (0.5, 0.9),
        weight_decay: float = 0.0,
        grad_clip: float | None = None,
        autocast_dtype: torch.dtype | None = None,
    ) -> None:
        """betas (0.5, 0.9) as in RAVE: a short first-moment memory lets the discriminator
        follow a moving generator. No weight decay by default (RAVE's plain Adam): on
        weight-normalised convs it mostly shrinks direction vectors, whose scale the
        normalisation removes anyway, and otherwise pulls the gains toward zero."""
        _losses_of(loss_kind)  # fail at construction, not at the first step
        self.module = discriminator
        self.discriminator: nn.Module = discriminator
        self.loss_kind = loss_kind
        self.adversarial_weight = adversarial_weight
        self.feature_matching_weight = feature_matching_weight
        self.grad_clip = grad_clip
        self.autocast_dtype = autocast_dtype
        self.optimizer = torch.optim.AdamW(
            discriminator.parameters(), lr=learning_rate, betas=betas, weight_decay=weight_decay
        )

    def _autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=self.autocast_dtype)

    def discriminator_step(self, real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
        """One optimiser step of the discriminator on real and (detached) fake audio (B, C, T).

        A non-finite loss or gradient skips the update (gradients dropped), reported as
        `disc_skipped` = 1; under DDP every rank sees the same averaged gradient and skips alike.
        """
        self.discriminator.train()
        batch = torch.cat([real.detach(), fake.detach()])
        with self._autocast(real.device):
            outputs = self.discriminator(batch)
        # Each output's batch axis holds the real items first, then the fake ones (channels
        # are folded into the batch item by item, so the halves stay apart).
        real_outputs, fake_outputs = _split_real_fake(outputs)
        loss = discriminator_loss(real_outputs, fake_outputs, self.loss_kind)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(
            self.module.parameters(), self.grad_clip or math.inf
        )
        healthy = bool(torch.isfinite(loss.detach())) and bool(torch.isfinite(grad_norm))
        if healthy:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return {
            "disc_loss": float(loss.detach()),
            "disc_grad_norm": float(grad_norm),
            "disc_real_logit": _mean_logit(real_outputs),
            "disc_fake_logit": _mean_logit(fake_outputs),
            "disc_skipped": 0.0 if healthy else 1.0,
        }

    def generator_losses(
        self, real: torch.Tensor, fake: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """(weighted adversarial + feature-matching loss, unweighted parts) for the generator.

        Gradients flow to `fake` only; run it under the same autocast as the caller's own loss.
        """
        with torch.no_grad():
            real_outputs = self.module(real.detach())
        with _frozen(self.module):
            fake_outputs = self.module(fake)
        adversarial = generator_loss(fake_outputs, self.loss_kind)
        feature_matching = feature_matching_loss(real_outputs, fake_outputs)
        total = (
            self.adversarial_weight * adversarial + self.feature_matching_weight * feature_matching
        )
        logs = {
            "gen_adversarial": float(adversarial.detach()),
            "gen_feature_matching": float(feature_matching.detach()),
        }
        return total, logs

    def state_dict(self) -> dict[str, Any]:
        """Discriminator weights and optimiser state: everything a resumed run needs."""
        return {"discriminator": self.module.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()`; afterwards nothing is shared with `state`'s tensors."""
        self.module.load_state_dict(state["discriminator"])  # copies into our parameters
        # torch's optimiser adopts the given moment tensors as they are, so an in-memory state
        # (not read from disk) would have two optimisers updating the same moments in place.
        self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))


def _split_real_fake(
    outputs: Outputs,
) -> tuple[list[DiscriminatorOutput], list[DiscriminatorOutput]]:
    """Outputs of a real-then-fake batch as (real outputs, fake outputs)."""
    real, fake = [], []
    for logits, features in outputs:
        halves = [tensor.chunk(2) for tensor in (logits, *features)]
        real.append((halves[0][0], [half[0] for half in halves[1:]]))
        fake.append((halves[0][1], [half[1] for half in halves[1:]]))
    return real, fake


def _mean_logit(outputs: Outputs) -> float:
    return float(torch.stack([logits.detach().float().mean() for logits, _ in outputs]).mean())


class AdversarialPhase:
    """Phase 2 of VAE training as `train.adversarial` sets it: nothing until `start_step`,
    then an `Adversary` over a `CombinedDiscriminator` on the model's device, the model's
    encoder frozen if asked, and the discriminator's state carried by every checkpoint.

    The discriminator is built at the first phase-2 step from its own seed, outside the global
    random stream, so a run resumed after the switch draws exactly the noise an uninterrupted
    one does.
    """

    SEED = 4242

    def __init__(self, config: AdversarialConfig) -> None:
        self.config = config
        self.adversary: Adversary | None = None
        self._pending: dict[str, Any] | None = None

    @property
    def enabled(self) -> bool:
        return self.config.start_step is not None

    def active(self, step: int) -> bool:
        return self.config.start_step is not None and step >= self.config.start_step

    def prepare(self, model: nn.Module, device: torch.device) -> None:
        """Build the adversary on `device` the first time; freeze the encoder if configured."""
        if self.adversary is None:
            self.adversary = self._build(device)
        model.encoder_frozen = self.config.freeze_encoder

    def _build(self, device: torch.device) -> Adversary:
        config = self.config
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(self.SEED)
            discriminator = CombinedDiscriminator(
                fft_sizes=tuple(config.fft_sizes),
                periods=tuple(config.periods),
                stft_channels=config.channels,
                period_channels=config.channels,
            ).to(device)
        adversary = Adversary(
            discriminator,
            loss_kind=config.loss,
            adversarial_weight=config.adversarial_weight,
            feature_matching_weight=config.feature_matching_weight,
            learning_rate=config.learning_rate,
            betas=tuple(config.betas),
        )
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            adversary.discriminator = nn.parallel.DistributedDataParallel(
                discriminator, device_ids=[device.index] if device.type == "cuda" else None
            )
        if self._pending:
            adversary.load_state_dict(self._pending)
            self._pending = None
        return adversary

    def losses(self, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """One discriminator step, then the generator's weighted adversarial losses."""
        if self.adversary is None:
            raise RuntimeError("AdversarialPhase.prepare must run before losses")
        logs = self.adversary.discriminator_step(real, fake)
        total, generator_logs = self.adversary.generator_losses(real, fake)
        return total, {**logs, **generator_logs}

    def state_dict(self) -> dict[str, Any]:
        """The discriminator's weights and optimiser state ({} before phase 2)."""
        if self.adversary is not None:
            return self.adversary.state_dict()
        return self._pending or {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore now, or at the build if phase 2 has not started in this process yet."""
        if not state:
            return
        if self.adversary is not None:
            self.adversary.load_state_dict(state)
        else:
            self._pending = state
