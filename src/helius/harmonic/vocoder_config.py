"""The config of the learned vocoder (model kind `vocoder`): the prepared data it trains on, the
mel features it reads and the network that turns them into audio, and its objective.

The mel settings carry no sample rate: it is `data.sample_rate` (the rate `helius prep` wrote),
so one model section describes the same features at any rate. Defaults are the mel VAE's
manual defaults at 22050 Hz: n_fft 2048, hop 512, 128 mel bands.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from helius.config.base import Section
from helius.config.train import TrainConfig
from helius.harmonic.mel_config import HarmonicDataConfig, MelFeaturesConfig

VocoderDataConfig = HarmonicDataConfig


class VocoderModelConfig(MelFeaturesConfig):
    """Mel features in, and a ConvNeXt backbone with an inverse-STFT head (Vocos-style)."""

    kind: Literal["vocoder"] = "vocoder"
    # The backbone: causal ConvNeXt blocks over mel frames, delayed to see the future.
    width: int = Field(256, ge=8, description="channels of the ConvNeXt blocks")
    blocks: int = Field(8, ge=1, description="ConvNeXt blocks")
    kernel: int = Field(7, ge=1, description="depthwise kernel of each block, in frames")
    expansion: int = Field(3, ge=1, description="MLP width of a block over its width")
    lookahead_frames: int | None = Field(
        None, ge=0, description="future mel frames an output frame sees; None: centred"
    )
    # The inverse-STFT head: log-magnitude and phase per bin of its own STFT.
    head_n_fft: int = Field(2048, ge=4, description="STFT size of the synthesis head")
    head_hop_length: int | None = Field(
        None, ge=1, description="hop of the synthesis head; None: hop_length (one frame each)"
    )
    phase: Literal["absolute", "integrated"] = Field(
        "integrated",
        description="the head's phase rows: each frame's phase, or its increment over the "
        "previous frame beyond each bin's own rotation (a steady input then makes steady tones)",
    )
    envelope_prior: bool = Field(
        True,
        description="the head's log-magnitudes are added to those of the mel's pseudo-inverse "
        "(so an untrained vocoder already makes noise of the input's spectral envelope)",
    )

    @property
    def synthesis_hop(self) -> int:
        return self.head_hop_length or self.hop_length

    @property
    def receptive_frames(self) -> int:
        """Mel frames one output frame depends on (the input conv and every block)."""
        return (self.blocks + 1) * (self.kernel - 1) + 1

    @property
    def lookahead(self) -> int:
        if self.lookahead_frames is None:
            return (self.receptive_frames - 1) // 2
        return self.lookahead_frames

    @model_validator(mode="after")
    def _consistent_sizes(self) -> VocoderModelConfig:
        if self.hop_length > self.n_fft:
            raise ValueError(f"hop_length ({self.hop_length}) must be <= n_fft ({self.n_fft})")
        hop = self.synthesis_hop
        if self.hop_length % hop:
            raise ValueError(
                f"head_hop_length ({hop}) must divide hop_length ({self.hop_length}): the head "
                "emits a whole number of its frames per mel frame"
            )
        if self.head_n_fft % (2 * hop):
            raise ValueError(
                f"head_n_fft ({self.head_n_fft}) must be a multiple of twice the head's hop "
                f"({hop}): overlapping Hann windows then cover every sample and each bin turns "
                "by a whole fraction of a turn per frame"
            )
        if self.lookahead >= self.receptive_frames:
            raise ValueError(
                f"lookahead_frames ({self.lookahead}) must be below the backbone's receptive "
                f"field ({self.receptive_frames} frames)"
            )
        return self


class VocoderTrainConfig(TrainConfig):
    """The shared training keys plus the vocoder's objective: multi-resolution STFT + mel."""

    max_steps: int | None = Field(100000, ge=1, description="stop after this many steps")
    batch_size: int = Field(16, ge=1)
    learning_rate: float = Field(5e-4, gt=0)
    crop_seconds: float = Field(
        1.0, gt=0, description="random crop per item (rounded down to whole mel frames)"
    )
    stft_weight: float = Field(1.0, ge=0, description="weight of the MR-STFT distance")
    mel_weight: float = Field(1.0, ge=0, description="weight of the log-mel L1 distance")
    fft_sizes: list[int] = Field(
        [2048, 1024, 512, 256, 128], min_length=1, description="MR-STFT resolutions"
    )
    log_epsilon: float = Field(
        1e-5, gt=0, description="added to STFT magnitudes before the log (MR-STFT term)"
    )
    checkpoint_dir: str = "checkpoints/vocoder"
    log_dir: str = "runs/vocoder"

    @model_validator(mode="after")
    def _some_objective(self) -> VocoderTrainConfig:
        if self.stft_weight == 0 and self.mel_weight == 0:
            raise ValueError("stft_weight and mel_weight are both 0: nothing would be trained")
        return self


class VocoderConfig(Section):
    """A whole vocoder config: `model: {kind: vocoder}` selects it (helius.config.load_config)."""

    data: VocoderDataConfig = Field(default_factory=VocoderDataConfig)
    model: VocoderModelConfig = Field(default_factory=VocoderModelConfig)
    train: VocoderTrainConfig = Field(default_factory=VocoderTrainConfig)
