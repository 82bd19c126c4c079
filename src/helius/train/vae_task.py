"""What training a VAE means: its data, its objective (reconstruction + beta * KL + extras),
its validation (decoding from z alone) and the media it logs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from helius import fidelity, metrics, progress, registry
from helius.config import HeliusConfig
from helius.data.dataset import SegmentDataset, with_validation
from helius.errors import DataError
from helius.losses import CLIP_FFT_SIZES, WAVE_FFT_SIZES, beta_at, kl_loss, reconstruction_loss
from helius.train.adversarial import AdversarialPhase
from helius.train.logging import TrainLogger
from helius.train.runtime import unwrap
from helius.train.task import Task, Validation


def aligned(
    model: nn.Module, audio: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(output, input) with the model's constant output lag taken out, for comparing them.

    A causal wave VAE's reconstruction lags its input by `output_delay_samples` (the causal
    PQMF's delay), which it cannot undo; waveform terms (phase, L1, SI-SDR) would otherwise
    ask it to predict the future. Models without a lag are returned as they are.
    """
    delay = int(getattr(unwrap(model), "output_delay_samples", 0))
    if delay <= 0 or delay >= target.shape[-1]:
        return audio, target
    return audio[..., delay:], target[..., :-delay]


# Validations before this step do not warn about a decoder that ignores its latent: every
# decoder starts out producing an average sound while the encoder finds its feet.
COLLAPSE_WARNING_AFTER_STEPS = 1000
# Training segments a model that can calibrate (`WaveVAE.calibrate`) sees before step 0.
CALIBRATION_SEGMENTS = 32


class VAETask(Task):
    """Train a wave VAE or a clip VAE on the segments listed by `data.train_index`."""

    name = "vae"
    kind = "vae"

    def __init__(self, config: HeliusConfig, hop_samples: int | None = None) -> None:
        self.config = config
        self.sample_rate = config.data.sample_rate
        self.channels = 1 if config.data.mono else 2
        self._hop = hop_samples
        self.adversarial = AdversarialPhase(config.train.adversarial)

    @property
    def ddp_find_unused_parameters(self) -> bool:
        """A frozen encoder gets no gradients in phase 2: DDP must be told to expect that."""
        return self.adversarial.enabled and self.config.train.adversarial.freeze_encoder

    def extra_state(self) -> dict[str, Any]:
        """What a checkpoint must carry besides the model: the discriminators (phase 2)."""
        return self.adversarial.state_dict()

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.adversarial.load_state_dict(state)

    @property
    def is_clip(self) -> bool:
        return self.config.model.kind == "clip_vae"

    def build_model(self) -> nn.Module:
        model = registry.get(self.config.model.kind).build(self.config)
        self._hop = int(model.hop_samples)
        if hasattr(model, "calibrate") and Path(self.config.data.train_index).is_file():
            model.calibrate(self._calibration_audio())
        if not self.is_clip and self._hop & (self._hop - 1):
            progress.note(
                f"note: this wave VAE's hop is {self._hop} samples, not a power of two; it "
                "trains and streams here, but `helius export` refuses it (nn~ breaks on it)"
            )
        return model

    def _calibration_audio(self) -> torch.Tensor:
        """Up to CALIBRATION_SEGMENTS training segments spread evenly over the index (the same
        on every rank, so DDP processes start alike). A resumed run loads its weights after."""
        segments = self.eval_dataset(self.config.data.train_index)
        count = min(CALIBRATION_SEGMENTS, len(segments))
        picks = torch.linspace(0, len(segments) - 1, count).round().long().unique()
        return torch.stack([segments[int(index)] for index in picks])

    def item_samples(self, seconds: float) -> int:
        """Clip VAE: the clip length. Wave VAE: `seconds` rounded down to whole latent frames."""
        if self.is_clip:
            return round(self.config.model.clip.clip_seconds * self.sample_rate)
        hop = self._hop or self.build_model().hop_samples
        frames = int(seconds * self.sample_rate) // hop
        if frames < 1:
            raise DataError(
                f"{seconds:g} s of audio is shorter than one latent frame ({hop} samples); "
                "use longer segments (helius prep --segment_length) or train.crop_seconds"
            )
        return frames * hop

    def datasets(self) -> tuple[SegmentDataset, SegmentDataset | None]:
        data, train = self.config.data, self.config.train
        crop = self.item_samples(train.crop_seconds or data.segment_seconds)
        train_set = SegmentDataset(
            data.train_index,
            self.sample_rate,
            crop,
            self.channels,
            random_crop=not self.is_clip,
            seed=train.seed,
        )
        return with_validation(train_set, data.val_index, self.eval_dataset)

    def eval_dataset(self, index_path: str | Path) -> SegmentDataset:
        """Whole segments (in whole latent frames) from an index, in order, for measuring."""
        length = self.item_samples(self.config.data.segment_seconds)
        return SegmentDataset(
            index_path, self.sample_rate, length, self.channels, random_crop=False
        )

    def loss(self, model: nn.Module, batch: torch.Tensor, step: int):
        train = self.config.train
        phase_two = self.adversarial.active(step)
        if phase_two:
            self.adversarial.prepare(unwrap(model), batch.device)
        out = model(batch, step=step)
        fft_sizes = CLIP_FFT_SIZES if self.is_clip else WAVE_FFT_SIZES
        output, target = aligned(model, out.audio, batch)
        recon, parts = reconstruction_loss(output, target, train.loss, fft_sizes, self.sample_rate)
        kl, kl_dims = kl_loss(out.mu, out.logvar, train.kl.free_bits)
        beta = beta_at(step, train.kl)
        total = recon + beta * kl + sum(out.aux_losses.values(), torch.zeros(()))
        logs = {f"recon_{name}": float(value.detach()) for name, value in parts.items()}
        if phase_two:
            adversarial, adversarial_logs = self.adversarial.losses(target, output)
            total = total + adversarial
            logs.update(adversarial_logs)
        logs.update(
            {f"aux_{name}": float(value.detach()) for name, value in out.aux_losses.items()}
        )
        logs.update(recon=float(recon.detach()), kl=float(kl_dims.sum()), beta=beta)
        return total, logs

    @torch.no_grad()
    def validate(self, model: nn.Module, batches: Iterator[torch.Tensor]) -> Validation:
        """Metrics of decoding from z = mu alone (the clip VAE uses generated skips); the score
        is the MR-STFT distance (lower is better)."""
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        sums: dict[str, float] = {}
        count = 0
        mus, kl_dims = [], []
        for batch in batches:
            batch = batch.to(device)
            out = model(batch)
            weight = batch.shape[0]
            audio, target = aligned(model, out.audio, batch)
            values = {
                "mrstft": metrics.mrstft_distance(audio, target),
                "mel": metrics.mel_distance(audio, target, self.sample_rate),
                "si_sdr": metrics.si_sdr(audio, target),
                "loudness_diff_db": metrics.loudness_difference_db(audio, target),
                **fidelity.follow_metrics(audio, target, self.sample_rate),
            }
            decode = getattr(unwrap(model), "decode", None)  # stand-ins (silence) have none
            if decode is not None:
                values.update(fidelity.latent_sensitivity_db(decode, out.z))
            for name, value in values.items():
                sums[name] = sums.get(name, 0.0) + float(value) * weight
            count += weight
            _, per_dim = kl_loss(out.mu, out.logvar, 0.0)
            kl_dims.append(per_dim * weight)
            mus.append(out.mu.transpose(1, -1).reshape(-1, out.mu.shape[1]).float().cpu())
        model.train(was_training)
        result: dict[str, Any] = {name: total / count for name, total in sums.items()}
        kl_per_dim = torch.stack(kl_dims).sum(0) / count
        health = metrics.latent_health(
            torch.cat(mus), kl_per_dim.cpu(), self.config.train.active_dim_threshold
        )
        result.update(health)
        result["kl"] = float(kl_per_dim.sum())
        result["latent_health"] = health
        if "sensitivity_zero_db" in result:
            result["ignores_latent"] = (
                result["sensitivity_zero_db"] < fidelity.COLLAPSE_SENSITIVITY_DB
            )
        return Validation(score=result["mrstft"], metrics=result)

    def validation_warning(self, validation: Validation, step: int) -> str | None:
        """A warning for the user when validation shows posterior collapse, else None."""
        result = validation.metrics
        if step < COLLAPSE_WARNING_AFTER_STEPS or not result.get("ignores_latent"):
            return None
        return (
            f"warning: at step {step} the decoder ignores its latent (replacing z by zeros "
            f"changes the output by {result['sensitivity_zero_db']:.1f} dB; loudness "
            f"envelope correlation {result['loudness_corr']:.2f}): reconstructions are an "
            "average sound, not the input. Train longer, or lower train.kl.beta / raise "
            "train.kl.free_bits; see docs/core.md, 'Does the model follow its input?'"
        )

    @torch.no_grad()
    def log_media(self, logger: TrainLogger, model: nn.Module, batch: torch.Tensor, step: int):
        was_training = model.training
        model.eval()
        out = model(batch[:1])
        model.train(was_training)
        logger.audio("audio/original", batch[0].mean(0), self.sample_rate, step)
        logger.audio("audio/reconstruction", out.audio[0].mean(0), self.sample_rate, step)
        _, per_dim = kl_loss(out.mu, out.logvar, 0.0)
        logger.histogram("latent/kl_per_dim", per_dim, step)
