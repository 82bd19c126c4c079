"""The audio VAE systems' config (Helius core's wave VAE and latent prior, LatentAudio's clip
VAE): data preparation, the two model designs, their training objective, and the prior.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, model_validator

from helius.config.base import Section
from helius.config.train import TrainConfig


class DataConfig(Section):
    """Where the prepared data is and how audio is cut (must match `helius prep`)."""

    train_index: str = Field("data/train_index.txt", description="index written by helius prep")
    val_index: str = Field("data/val_index.txt", description="validation index from helius prep")
    sample_rate: int = Field(48000, gt=0, description="Hz; prep resamples to this")
    segment_seconds: float = Field(2.0, gt=0, description="length of each prepared segment")
    mono: bool = Field(True, description="downmix to one channel")
    silence_threshold_db: float = Field(
        -60.0, le=0, description="segments whose RMS is below this (dBFS) are dropped"
    )
    val_fraction: float = Field(0.02, ge=0, lt=1, description="share of source files for val")
    one_shot: bool = Field(
        False, description="prep makes one clip per file from its onset (one-shot libraries)"
    )


class StftModelConfig(Section):
    """The wave VAE's spectral design (`model.wave.transform: stft`): causal STFT frames into
    ConvNeXt blocks, and out of the decoder the log-magnitude and phase of every bin, turned
    into audio by an inverse STFT. One latent frame = hop x frames_per_latent samples."""

    n_fft: int = Field(2048, ge=16, description="STFT size (a power of two)")
    hop: int = Field(512, ge=1, description="STFT hop in samples (n_fft / 4: 75 % overlap)")
    frames_per_latent: int = Field(4, ge=1, description="STFT frames per latent frame")
    width: int = Field(256, ge=8, description="channels of the ConvNeXt blocks")
    encoder_blocks: int = Field(3, ge=0, description="ConvNeXt blocks before the latent")
    decoder_blocks: int = Field(6, ge=0, description="ConvNeXt blocks after the latent")
    phase_advance: bool = Field(
        True, description="decoder phases relative to each bin's own rotation (steady tones)"
    )
    phase: Literal["absolute", "integrated"] = Field(
        "absolute",
        description="absolute: the decoder writes each frame's phase; integrated: it writes "
        "each frame's phase increment (instantaneous frequency), summed over frames, so a "
        "held note between two bins is a constant output",
    )

    @model_validator(mode="after")
    def _hop_divides_n_fft(self) -> StftModelConfig:
        if self.n_fft % self.hop:
            raise ValueError(
                f"hop ({self.hop}) must divide n_fft ({self.n_fft}), e.g. hop = n_fft / 4"
            )
        return self


class WaveModelConfig(Section):
    """The streaming waveform VAE (sequence latent). transform pqmf: compression = bands x
    prod(ratios); transform stft: compression = stft.hop x stft.frames_per_latent."""

    transform: Literal["pqmf", "stft"] = Field(
        "stft",
        description="pqmf: sub-bands through strided convs; stft: STFT frames through "
        "ConvNeXt blocks and an inverse-STFT head (model.wave.stft)",
    )
    stft: StftModelConfig = Field(default_factory=StftModelConfig)

    bands: Literal[1, 2, 4, 8, 16] = Field(16, description="PQMF sub-bands (1 = no PQMF)")
    ratios: list[int] = Field([4, 4, 4, 2], min_length=1, description="encoder strides")
    capacity: int = Field(32, ge=4, description="channels of the first encoder stage")
    dilations: list[int] = Field([1, 3, 9], min_length=1, description="per residual stage")
    activation: Literal["snake", "leaky_relu", "elu"] = "snake"
    noise_branch: bool = Field(True, description="add filtered noise in the decoder")
    amplitude_modulation: bool = Field(True, description="decoder output gated by an envelope")
    causal: bool = Field(True, description="all padding on the left (needed for streaming)")
    headroom: float = Field(0.9, gt=0, le=1, description="output = headroom * tanh(.)")
    logvar_min: float = Field(-10.0, description="floor of the encoder's log-variance")

    @property
    def hop_samples(self) -> int:
        """Audio samples per latent frame of the design `transform` picks."""
        if self.transform == "stft":
            return self.stft.hop * self.stft.frames_per_latent
        return self.bands * math.prod(self.ratios)


class ClipModelConfig(Section):
    """The one-latent-per-clip VAE with a U-Net decoder fed by a skip generator."""

    clip_seconds: float = Field(1.0, gt=0, description="fixed clip length")
    channels: list[int] = Field([16, 32, 64, 128, 256], min_length=1, description="per stage")
    strides: list[int] = Field([4, 4, 4, 4, 4], min_length=1, description="per stage")
    hidden: int = Field(256, ge=8, description="width of the mu/logvar MLP heads")
    logvar_min: float = Field(-10.0, description="floor of the encoder's log-variance")
    headroom: float = Field(0.9, gt=0, le=1, description="output = headroom * tanh(.)")
    amplitude_modulation: bool = Field(
        True, description="output times a learned sigmoid envelope, so decays can reach silence"
    )
    skip_loss_weight: float = Field(1.0, ge=0, description="skip consistency loss weight")
    generated_skip_prob_start: float = Field(0.5, ge=0, le=1)
    generated_skip_prob_end: float = Field(1.0, ge=0, le=1)
    generated_skip_steps: int = Field(2000, ge=1, description="steps of the linear ramp")


class ModelConfig(Section):
    """Which model to build and its size."""

    kind: Literal["wave_vae", "clip_vae"] = "wave_vae"
    latent_dim: int = Field(64, ge=1, le=128)
    sample_posterior: bool = Field(
        True, description="train on z ~ q(z|x); false trains on the mean (deterministic)"
    )
    wave: WaveModelConfig = Field(default_factory=WaveModelConfig)
    clip: ClipModelConfig = Field(default_factory=ClipModelConfig)


class LossConfig(Section):
    """Reconstruction loss; FFT sizes default to 2048..128 (wave) or 4096..128 (clip)."""

    fft_sizes: list[int] | None = Field(None, description="None: the model kind's default")
    hop_ratio: float = Field(0.25, gt=0, le=1)
    phase_weight: float = Field(0.0, ge=0, description="L1 on STFT real/imag parts")
    pre_emphasis: float | None = Field(None, ge=0, lt=1, description="e.g. 0.97; None: off")
    waveform_l1_weight: float = Field(0.0, ge=0)
    log_epsilon: float = Field(
        1e-2, gt=0, description="added to STFT magnitudes before the log (floor of the log L1)"
    )
    mel_weight: float = Field(0.0, ge=0, description="L1 of log10 mel magnitudes (DAC-style)")
    loudness_weight: float = Field(
        0.0,
        ge=0,
        description="L1 of per-frame loudness (dB / 10, 2048-sample frames, hop 512) of the "
        "output and the input: a level the log-magnitude terms let drift costs directly",
    )


class BetaConfig(Section):
    """KL weight schedule and per-dimension free bits."""

    schedule: Literal["constant", "linear", "cyclical", "log"] = "linear"
    beta: float = Field(0.001, ge=0, description="final (or constant) KL weight")
    beta_start: float = Field(1e-4, ge=0, description="start of the log-scale warm-up")
    warmup_steps: int = Field(5000, ge=1)
    cycle_steps: int = Field(10000, ge=1, description="length of one cyclical cycle")
    free_bits: float = Field(0.25, ge=0, description="nats per dimension not penalised")


class AdversarialConfig(Section):
    """Adversarial fine-tuning (RAVE's phase 2): from `start_step` on, a multi-scale STFT and
    a multi-period discriminator judge the reconstruction, and the VAE also minimises their
    adversarial and feature-matching losses. Meant for long (GPU) runs."""

    start_step: int | None = Field(
        None, ge=0, description="optimizer step where phase 2 starts; None: never"
    )
    loss: Literal["hinge", "least_squares"] = "hinge"
    adversarial_weight: float = Field(1.0, ge=0)
    feature_matching_weight: float = Field(2.0, ge=0)
    freeze_encoder: bool = Field(
        True, description="phase 2 trains the decoder only (the latent space stays put)"
    )
    learning_rate: float = Field(1e-4, gt=0, description="discriminator AdamW rate")
    betas: tuple[float, float] = (0.5, 0.9)
    fft_sizes: list[int] = Field([2048, 1024, 512], description="STFT discriminator sizes")
    periods: list[int] = Field([2, 3, 5, 7, 11], description="waveform discriminator periods")
    channels: int = Field(32, ge=1, description="discriminator width")


class VAETrainConfig(TrainConfig):
    """The audio VAEs' training: the shared section plus their objective."""

    crop_seconds: float | None = Field(
        None, gt=0, description="random crop of each segment (wave VAE); None: whole segment"
    )
    active_dim_threshold: float = Field(0.01, ge=0, description="KL (nats) of an active dim")
    loss: LossConfig = Field(default_factory=LossConfig)
    kl: BetaConfig = Field(default_factory=BetaConfig)
    adversarial: AdversarialConfig = Field(default_factory=AdversarialConfig)


class PriorTrainConfig(TrainConfig):
    """The prior's own training run (`prior.train`): the shared section with prior defaults."""

    max_steps: int | None = Field(None, ge=1, description="stop after this many steps")
    epochs: int | None = Field(10, ge=1, description="stop after this many epochs")
    batch_size: int = Field(16, ge=1)
    log_dir: str = Field("runs/prior", description="TensorBoard folder of the prior's run")


# Training keys the prior section had before `prior.train` (still read, moved on load).
_PRIOR_TRAIN_KEYS = ("epochs", "batch_size", "learning_rate", "max_steps", "max_minutes")


class PriorConfig(Section):
    """The latent prior trained on the VAE's latent sequences (see helius.models.prior)."""

    kind: Literal["gru", "transformer"] = "gru"
    hidden_size: int = Field(256, ge=1, description="GRU width / transformer model width")
    num_layers: int = Field(2, ge=1)
    heads: int = Field(4, ge=1, description="attention heads (transformer)")
    bins: int = Field(64, ge=2, description="equal-probability bins per latent dimension")
    dropout: float = Field(0.0, ge=0, lt=1)
    chunk_frames: int = Field(32, ge=2, description="frames per training chunk")
    chunks: int = Field(4, ge=1, description="chunks per training item, state carried over")
    context_frames: int = Field(256, ge=2, description="transformer attention window")
    train: PriorTrainConfig = Field(default_factory=PriorTrainConfig)

    @model_validator(mode="before")
    @classmethod
    def _legacy_training_keys(cls, data: Any) -> Any:
        """`prior.max_steps` and its siblings (configs and checkpoints written before
        `prior.train`) mean `prior.train.max_steps`; a key given both ways must agree."""
        if not isinstance(data, dict) or not any(key in data for key in _PRIOR_TRAIN_KEYS):
            return data
        data = dict(data)
        train = dict(data.get("train") or {})
        for key in _PRIOR_TRAIN_KEYS:
            if key in data:
                value = data.pop(key)
                if train.setdefault(key, value) != value:
                    raise ValueError(
                        f"{key} is given as prior.{key} ({value!r}) and as prior.train.{key} "
                        f"({train[key]!r}); keep prior.train.{key}"
                    )
        data["train"] = train
        return data


class AudioVAEConfig(Section):
    """The config of the audio VAE systems (Helius core: wave_vae and its prior; LatentAudio:
    clip_vae). `model.kind` picks the model; the registry maps it to this schema."""

    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: VAETrainConfig = Field(default_factory=VAETrainConfig)
    prior: PriorConfig = Field(default_factory=PriorConfig)


# The name every module used before configs were split by system.
HeliusConfig = AudioVAEConfig
