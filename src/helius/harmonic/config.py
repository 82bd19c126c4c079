"""The config of the mel-spectrogram VAE (model kind `mel_vae`, HarmonicVAE's manual): the
prepared data, the mel features and the network over fixed-length mel patches, and its
objective with the manual's beta annealing.

Like the vocoder's, the mel settings carry no sample rate: it is `data.sample_rate`. Defaults
are the manual's: 22050 Hz, n_fft 2048, hop 512, 128 mel bands (`n_mels 256, n_fft 4096` is its
high-resolution setting), latent_dim 128 (the manual uses 64 to 256).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from helius.config.base import Section
from helius.config.train import TrainConfig
from helius.harmonic.mel_config import HarmonicDataConfig, MelFeaturesConfig


class MelVAEModelConfig(MelFeaturesConfig):
    """Log-mel patches of `segment_length` seconds in, the same out, through a latent vector."""

    kind: Literal["mel_vae"] = "mel_vae"
    segment_length: float = Field(2.0, gt=0, description="seconds of audio per mel patch")
    # conv is the default because it measured better through Griffin-Lim on held-out music
    # at the same CPU budget (bench/harmonic.py, MR-STFT 1.81 vs 1.86, mel 0.69 vs 0.74).
    architecture: Literal["mlp", "conv"] = Field(
        "conv",
        description="conv: 2-D convs over time x mel; mlp: the manual's dense encoder/decoder "
        "(hidden_dims)",
    )
    latent_dim: int = Field(128, ge=2, le=1024, description="latent size (manual: 64 to 256)")
    hidden_dims: list[int] = Field(
        [1024, 512, 256], min_length=1, description="mlp widths, encoder order (decoder reversed)"
    )
    conv_channels: list[int] = Field(
        [32, 64, 128, 256], min_length=1, description="conv channels, each stage halves time x mel"
    )
    logvar_min: float = Field(-10.0, description="floor of the posterior's log-variance")

    def patch_frames(self, sample_rate: int) -> int:
        """Mel frames in one patch: centred frames of segment_length seconds."""
        return int(self.segment_length * sample_rate) // self.hop_length + 1

    @model_validator(mode="after")
    def _consistent_sizes(self) -> MelVAEModelConfig:
        if self.hop_length > self.n_fft:
            raise ValueError(f"hop_length ({self.hop_length}) must be <= n_fft ({self.n_fft})")
        if any(width < 1 for width in [*self.hidden_dims, *self.conv_channels]):
            raise ValueError("hidden_dims and conv_channels must be positive")
        return self


class MelVAETrainConfig(TrainConfig):
    """The shared training keys plus the mel VAE's objective and the manual's beta annealing:
    the KL weight goes linearly from beta_start to beta_end over beta_steps epochs."""

    batch_size: int = Field(32, ge=1)
    learning_rate: float = Field(1e-3, gt=0)
    # The manual's runs are epochs of a few dozen steps: a 200-step warm-up would be most of one.
    warmup_steps: int = Field(0, ge=0, description="linear LR warm-up steps")
    beta_start: float = Field(0.0, ge=0, description="KL weight at epoch 0")
    beta_end: float = Field(1.0, ge=0, description="KL weight from epoch beta_steps on")
    beta_steps: int = Field(10, ge=0, description="epochs of annealing (0: beta_end at once)")
    reconstruction: Literal["l1", "mse", "masked_l1"] = Field(
        "masked_l1",
        description="log-mel L1, MSE, or L1 weighted by a simultaneous-masking model "
        "(helius.harmonic.psychoacoustic)",
    )
    # Off by default: at equal budgets it did not improve any audio distance (bench/harmonic.py).
    harmonicity_weight: float = Field(
        0.0, ge=0, description="weight of the harmonicity term (0: off; e.g. 0.1)"
    )
    augment: bool = Field(False, description="gain, pitch, stretch and noise on the fly")
    augment_strength: float = Field(0.5, ge=0, le=1, description="0: none, 1: the widest")
    visualize_every_epochs: int | None = Field(
        None, ge=1, description="write visualizations every N epochs (None: never)"
    )
    visualization_dir: str = "visualizations"
    checkpoint_dir: str = "checkpoints/mel_vae"
    log_dir: str = "runs/mel_vae"

    def beta(self, epoch: float) -> float:
        """The KL weight at `epoch` (fractional epochs anneal smoothly)."""
        if self.beta_steps == 0 or epoch >= self.beta_steps:
            return self.beta_end
        share = max(epoch, 0.0) / self.beta_steps
        return self.beta_start + share * (self.beta_end - self.beta_start)


class MelVAEConfig(Section):
    """A whole mel VAE config: `model: {kind: mel_vae}` selects it (helius.config.load_config)."""

    data: HarmonicDataConfig = Field(default_factory=HarmonicDataConfig)
    model: MelVAEModelConfig = Field(default_factory=MelVAEModelConfig)
    train: MelVAETrainConfig = Field(default_factory=MelVAETrainConfig)
