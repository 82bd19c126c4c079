"""What HarmonicVAE's configs share: its data section (at the manual's 22050 Hz) and the log-mel
features (`helius.nn.mel.LogMel`) that the mel VAE learns and the vocoder inverts."""

from __future__ import annotations

from pydantic import Field

from helius.config.audio import DataConfig
from helius.config.base import Section


class HarmonicDataConfig(DataConfig):
    """The prepared folder a HarmonicVAE model trains on; at the manual's 22050 Hz unless told."""

    sample_rate: int = Field(22050, gt=0, description="Hz; prep resamples to this")


class MelFeaturesConfig(Section):
    """The mel features, without a sample rate (it is `data.sample_rate`); a model section
    built on them narrows `kind` to its own name (declared here so it stays the first key)."""

    kind: str
    n_fft: int = Field(2048, ge=16, description="STFT size of the mel analysis")
    hop_length: int = Field(512, ge=1, description="samples per mel frame")
    n_mels: int = Field(128, ge=8, description="mel bands")
    f_min: float = Field(0.0, ge=0, description="lowest mel filter edge, Hz")
    f_max: float | None = Field(None, gt=0, description="highest mel filter edge; None: Nyquist")
