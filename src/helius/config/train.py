"""The training section every system shares (`train:` in a config, `prior.train:` for the
prior): optimiser, LR schedule, loop bounds, validation and checkpoint cadence, logging, device,
precision. A system's own objective (losses, KL schedule, ...) lives in a subclass beside it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from helius.config.base import Section


class TrainConfig(Section):
    """What every trained system shares: optimiser, schedule, loop bounds, validation cadence,
    checkpoints, logging, device and precision. A system adds its objective in a subclass."""

    # Training ends at whichever of these limits comes first (at least one must be set).
    max_steps: int | None = Field(
        30000, ge=1, description="stop after this many steps (the KL warm-up lies inside)"
    )
    epochs: int | None = Field(None, ge=1, description="stop after this many epochs")
    max_minutes: float | None = Field(
        None, gt=0, description="stop (and save) after this much wall-clock training time"
    )
    batch_size: int = Field(8, ge=1)
    learning_rate: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    grad_accum_steps: int = Field(1, ge=1)
    grad_clip: float | None = Field(1.0, gt=0, description="max gradient norm; None: off")
    lr_schedule: Literal["constant", "cosine", "plateau"] = "constant"
    warmup_steps: int = Field(
        200, ge=0, description="linear LR warm-up (constant, cosine; plateau starts at full rate)"
    )
    plateau_patience: int = Field(10, ge=1, description="validations without improvement")
    plateau_factor: float = Field(0.5, gt=0, lt=1)
    ema_decay: float | None = Field(None, gt=0, lt=1, description="e.g. 0.999; None: off")
    val_every_steps: int = Field(500, ge=1)
    validate_every_epoch: bool = Field(False, description="also validate at each epoch's end")
    early_stopping_patience: int | None = Field(None, ge=1, description="validations")
    keep_last: int = Field(3, ge=1, description="epoch checkpoints kept")
    checkpoint_every_epochs: int = Field(1, ge=1, description="save an epoch checkpoint every N")
    max_nonfinite_steps: int = Field(5, ge=1, description="then reload and halve the LR")
    seed: int = 0
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N or mps")
    amp: bool = Field(True, description="bf16 autocast on CUDA")
    compile: bool = Field(False, description="torch.compile the model")
    num_workers: int = Field(0, ge=0, description="data loader processes")
    checkpoint_dir: str = "checkpoints"
    log_dir: str = "runs"
    log_audio_every_steps: int = Field(2000, ge=1)
    tensorboard: bool = Field(True, description="write TensorBoard logs to log_dir")
