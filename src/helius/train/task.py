"""What `fit` asks of a trained system: the `Task` base class with its documented defaults, and
the typed result of a validation.

A system subclasses `Task` and writes the four required hooks (`build_model`, `datasets`,
`loss`, `validate`); every other hook has a default that suits most systems, so `fit` never
probes a task for optional parts.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn
from torch.utils.data import Dataset, default_collate

from helius.train.logging import TrainLogger


@runtime_checkable
class EpochDataset(Protocol):
    """A data set whose items depend on the epoch (e.g. random crops drawn per epoch)."""

    def set_epoch(self, epoch: int) -> None: ...


@dataclass
class Validation:
    """One validation: the score that picks best.pt (and drives early stopping and the plateau
    schedule), its direction, and every metric to log and store with the checkpoint."""

    score: float
    metrics: dict[str, Any] = field(default_factory=dict)
    higher_is_better: bool = False

    @property
    def cost(self) -> float:
        """The score as a quantity to minimise (lower is better whatever the direction)."""
        return -self.score if self.higher_is_better else self.score

    def record(self) -> dict[str, Any]:
        """The metrics with the score under "score" (what checkpoints and `helius eval` show)."""
        return {**self.metrics, "score": self.score}


class Task:
    """One trainable system. Subclasses set `name` and `kind` and write the required hooks."""

    name = "model"  # epoch checkpoints are <name>_epoch{N}.pt
    kind = "model"  # stored in checkpoints and checked when they load
    checkpoint_prefix = ""  # <prefix>last.pt and <prefix>best.pt (tasks sharing a folder)
    epoch_checkpoint = "{name}_epoch{epoch}.pt"  # the file saved at the end of each epoch
    sample_rate: int | None = None  # Hz of the audio batches; None for symbolic data
    resume_hint = "--resume"  # how a stopped run of this system is continued, for messages
    ddp_find_unused_parameters = False  # True when some parameters get no gradient

    # ---- required ------------------------------------------------------------------------

    def build_model(self) -> nn.Module:
        raise NotImplementedError

    def datasets(self) -> tuple[Dataset, Dataset | None]:
        """(training set, validation set or None)."""
        raise NotImplementedError

    def loss(
        self, model: nn.Module, batch: Any, step: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """(loss to minimise, numbers to log) of one batch at optimizer step `step`."""
        raise NotImplementedError

    def validate(self, model: nn.Module, batches: Iterator[Any]) -> Validation:
        raise NotImplementedError

    # ---- defaults ------------------------------------------------------------------------

    def collate(self, items: Sequence[Any]) -> Any:
        """Items of the data set -> one batch (default: stacked by torch's default_collate)."""
        return default_collate(items)

    def parameter_groups(self, model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
        """Optimizer groups: weight decay on matrices and kernels (rank >= 2) only, never on
        biases, norms' gains or other vectors (decaying those only shrinks them)."""
        trainable = [p for p in model.parameters() if p.requires_grad]
        decayed = [p for p in trainable if p.ndim >= 2]
        kept = [p for p in trainable if p.ndim < 2]
        groups = [{"params": decayed, "weight_decay": weight_decay}]
        if kept:
            groups.append({"params": kept, "weight_decay": 0.0})
        return groups

    def validation_warning(self, validation: Validation, step: int) -> str | None:
        """A message for the user when a validation shows something wrong (default: none)."""
        return None

    def log_media(self, logger: TrainLogger, model: nn.Module, batch: Any, step: int) -> None:
        """Audio, images or histograms for TensorBoard every `train.log_audio_every_steps`."""

    def set_epoch(self, train_set: Dataset, epoch: int) -> None:
        """Called before every epoch; by default a training set that draws anew each epoch
        (new random crops: it has `set_epoch`) is told which epoch starts."""
        if isinstance(train_set, EpochDataset):
            train_set.set_epoch(epoch)

    def end_epoch(
        self,
        model: nn.Module,
        epoch: int,
        epochs: int | None,
        validation: dict[str, Any],
        learning_rate: float,
    ) -> str | None:
        """Called on rank 0 after epoch `epoch` (1-based, of `epochs` when known) is saved, with
        the last validation's metrics; a returned line is printed (default: nothing)."""
        return None

    def extra_state(self) -> dict[str, Any]:
        """What a checkpoint carries besides the model and optimizer (e.g. discriminators)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore `extra_state` on resume."""

    def batch_seconds(self, batch: Any) -> float:
        """Seconds of audio in a batch (for audio-seconds per second); 0 without audio."""
        if self.sample_rate and isinstance(batch, torch.Tensor):
            return batch.shape[0] * batch.shape[-1] / self.sample_rate
        return 0.0
