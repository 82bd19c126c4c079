"""The config of the Audio Editor's pointer network (model kind `pointer_editor`): the pairs
folder and its mel features, the network's sizes, and the seed's objective weights.

Defaults are the seed's full size (d_model 256, 8 heads, 4 + 4 layers). Its `mini` size is the
override set in `MINI_OVERRIDES` (also `configs/editor_mini.yaml`): d_model 128, 2 + 2 layers.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from helius.config.base import Section
from helius.config.train import TrainConfig

# The seed's `mini` preset, as `--set` overrides of the defaults.
MINI_OVERRIDES = (
    "model.d_model=128",
    "model.heads=4",
    "model.encoder_layers=2",
    "model.decoder_layers=2",
)


class EditorDataConfig(Section):
    """A pairs folder (helius.edit.pairs layout) and the log-mel frames the editor points at.
    hop_length must be the pointer files' hop_samples (synth and align write 256)."""

    data_dir: str = Field("data/editor", description="ROOT with input/ and desired_output/")
    sample_rate: int = Field(22050, ge=1000)
    n_fft: int = Field(2048, ge=16)
    hop_length: int = Field(256, ge=1)
    n_mels: int = Field(128, ge=8)
    max_raw_frames: int = Field(
        2048, ge=8, description="training crops of the raw track (~24 s at 22050 Hz, hop 256)"
    )
    min_seconds: float = Field(5.0, ge=0, description="shorter pairs are skipped")
    val_pairs: int = Field(
        1,
        ge=0,
        description="pairs held out for validation (the last by name; 0: validate on "
        "the training pairs, for overfit checks)",
    )

    @model_validator(mode="after")
    def _hop_fits(self) -> EditorDataConfig:
        if self.hop_length > self.n_fft:
            raise ValueError(f"hop_length ({self.hop_length}) must be <= n_fft ({self.n_fft})")
        return self


class PointerEditorModelConfig(Section):
    """The pointer network: a local-window encoder over raw frames with beat and bar
    summaries, a style VAE latent, and a causal decoder that points back at raw frames."""

    kind: Literal["pointer_editor"] = "pointer_editor"
    d_model: int = Field(256, ge=8)
    heads: int = Field(8, ge=1)
    encoder_layers: int = Field(4, ge=1)
    decoder_layers: int = Field(4, ge=1)
    window: int = Field(64, ge=0, description="encoder attention window in frames (0: none)")
    latent_dim: int = Field(32, ge=1, description="style latent size")
    beats_per_bar: int = Field(4, ge=1)
    bars_per_phrase: int = Field(4, ge=1)
    dropout: float = Field(0.1, ge=0, lt=1)

    @model_validator(mode="after")
    def _heads_fit(self) -> PointerEditorModelConfig:
        if self.d_model % (2 * self.heads):
            raise ValueError(
                f"d_model ({self.d_model}) must be a multiple of 2 x heads ({self.heads})"
            )
        return self


class PointerEditorTrainConfig(TrainConfig):
    """The shared training keys plus the seed's loss weights."""

    batch_size: int = Field(4, ge=1)
    learning_rate: float = Field(3e-4, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    grad_clip: float | None = Field(1.0, gt=0)
    lr_schedule: Literal["constant", "cosine", "plateau"] = "cosine"
    warmup_steps: int = Field(1000, ge=0)
    pointer_weight: float = Field(1.0, ge=0, description="frame pointer cross-entropy")
    bar_weight: float = Field(0.2, ge=0, description="bar pointer cross-entropy")
    beat_weight: float = Field(0.3, ge=0, description="beat pointer cross-entropy")
    op_weight: float = Field(1.0, ge=0, description="edit op cross-entropy")
    stop_weight: float = Field(0.5, ge=0, description="stop BCE")
    kl_weight: float = Field(0.1, ge=0, description="style KL")
    length_weight: float = Field(0.01, ge=0, description="MSE of log(edit / raw length)")
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    checkpoint_dir: str = "checkpoints/editor"
    log_dir: str = "runs/editor"


class PointerEditorConfig(Section):
    """A whole editor config: `model: {kind: pointer_editor}` selects it."""

    data: EditorDataConfig = Field(default_factory=EditorDataConfig)
    model: PointerEditorModelConfig = Field(default_factory=PointerEditorModelConfig)
    train: PointerEditorTrainConfig = Field(default_factory=PointerEditorTrainConfig)
