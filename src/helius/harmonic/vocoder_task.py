"""What training the vocoder means: random crops of a prepared folder's segments, their own
log-mel frames as input, and the audio back, scored by multi-resolution STFT and mel distance."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from helius import fidelity, metrics, registry
from helius.data.dataset import SegmentDataset, with_validation
from helius.errors import DataError
from helius.harmonic.vocoder_config import VocoderConfig
from helius.train.logging import TrainLogger
from helius.train.runtime import unwrap
from helius.train.task import Task, Validation


def vocoder_loss(
    audio: torch.Tensor, target: torch.Tensor, config: VocoderConfig
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(weighted MR-STFT + weighted mel distance, the unweighted parts) of (B, 1, T) audio.

    The mel term is `fidelity.dac_mel_distance` (the wave VAE's mel loss), not the metric
    `metrics.mel_distance` that validation reports: the metric's magnitude has an infinite
    gradient at a silent bin (a plain sqrt), which turned a vocoder's step NaN within 250 steps
    of training; the loss's is floored."""
    train = config.train
    parts = {}
    if train.stft_weight > 0:
        parts["stft"] = metrics.mrstft_distance(
            audio, target, train.fft_sizes, eps=train.log_epsilon
        )
    if train.mel_weight > 0:
        parts["mel"] = fidelity.dac_mel_distance(audio, target, config.data.sample_rate)
    weights = {"stft": train.stft_weight, "mel": train.mel_weight}
    total = sum((weights[name] * value for name, value in parts.items()), torch.zeros(()))
    return total, parts


class VocoderTask(Task):
    """Train a vocoder on the segments listed by `data.train_index` (mono: channels averaged)."""

    name = "vocoder"
    kind = "vocoder"

    def __init__(self, config: VocoderConfig) -> None:
        self.config = config
        self.sample_rate = config.data.sample_rate

    def build_model(self) -> nn.Module:
        return registry.get(self.kind).build(self.config)

    def item_samples(self, seconds: float) -> int:
        """`seconds` of audio rounded down to whole mel frames (at least two hops)."""
        hop = self.config.model.hop_length
        hops = int(seconds * self.sample_rate) // hop
        if hops < 2:
            raise DataError(
                f"{seconds:g} s is shorter than two mel hops ({2 * hop} samples at "
                f"{self.sample_rate} Hz); raise train.crop_seconds or lower model.hop_length"
            )
        return hops * hop

    def datasets(self) -> tuple[SegmentDataset, SegmentDataset | None]:
        data, train = self.config.data, self.config.train
        crop = self.item_samples(min(train.crop_seconds, data.segment_seconds))
        train_set = SegmentDataset(
            data.train_index, self.sample_rate, crop, 1, random_crop=True, seed=train.seed
        )
        return with_validation(train_set, data.val_index, self.eval_dataset)

    def eval_dataset(self, index_path: str | Path) -> SegmentDataset:
        """Whole segments (in whole mel hops) from an index, in order, for measuring."""
        length = self.item_samples(self.config.data.segment_seconds)
        return SegmentDataset(index_path, self.sample_rate, length, 1, random_crop=False)

    def loss(self, model: nn.Module, batch: torch.Tensor, step: int):
        # Through model's own forward (DDP syncs gradients there); crops are whole hops, so
        # the output is exactly as long as the batch.
        audio = model(unwrap(model).mel(batch))
        total, parts = vocoder_loss(audio, batch, self.config)
        return total, {name: float(value.detach()) for name, value in parts.items()}

    @torch.no_grad()
    def validate(self, model: nn.Module, batches: Iterator[torch.Tensor]) -> Validation:
        """MR-STFT and mel distance of each validation segment's resynthesis; the score is the
        mel distance (lower is better)."""
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        sums: dict[str, float] = {}
        count = 0
        for batch in batches:
            batch = batch.to(device)
            audio = unwrap(model).resynthesize(batch)
            values = {
                "mrstft": metrics.mrstft_distance(audio, batch),
                "mel": metrics.mel_distance(audio, batch, self.sample_rate),
                "loudness_diff_db": metrics.loudness_difference_db(audio, batch),
            }
            for name, value in values.items():
                sums[name] = sums.get(name, 0.0) + float(value) * batch.shape[0]
            count += batch.shape[0]
        model.train(was_training)
        if count == 0:
            raise DataError(f"validation index {self.config.data.val_index} gave no segments")
        result = {name: total / count for name, total in sums.items()}
        return Validation(score=result["mel"], metrics=result)

    @torch.no_grad()
    def log_media(self, logger: TrainLogger, model: nn.Module, batch: torch.Tensor, step: int):
        was_training = model.training
        model.eval()
        audio = unwrap(model).resynthesize(batch[:1])
        model.train(was_training)
        logger.audio("audio/original", batch[0].mean(0), self.sample_rate, step)
        logger.audio("audio/vocoded", audio[0, 0], self.sample_rate, step)
