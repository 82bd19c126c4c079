"""Seeded on-the-fly audio augmentation for training HarmonicVAE: gain, pitch shift, time
stretch and additive noise, all scaled by one `strength` in [0, 1], and a data set wrapper.

Ranges at strength 1 (each amount is drawn uniformly in its range times `strength`):
- gain: +-6 dB (`max_gain_db`);
- pitch shift: +-2 semitones (`max_semitones`), duration kept;
- time stretch: rate 0.9..1.1 (`max_stretch` 0.1; rate > 1 is faster), pitch kept. The result
  is cropped or zero-padded at its end back to the input's length: the point is a changed tempo
  within a fixed-length patch, not a longer or shorter clip;
- white noise: up to 30 dB SNR below the clip's RMS (`noise_snr_db`). The noise amplitude is the
  clip's RMS x 10^(-30/20) x strength x u with u ~ U(0, 1), i.e. an SNR of
  30 - 20 log10(strength x u) dB: never louder than 30 dB SNR, and nothing at strength 0. The
  noise is scaled to exactly that RMS, so the drawn SNR is the SNR one measures. A silent clip
  gets no noise (its RMS is 0).
Each effect is applied with its own probability. Effects run in the order pitch shift, time
stretch, gain, noise (so the noise is relative to the final level), then NaNs become 0 and the
peak is clipped to [-1, 1]; the output is float32 and has the input's shape and type.

Every random number is drawn in a fixed order (`draw`) whatever the probabilities and strength,
so changing one effect's probability does not reshuffle the others'. `AugmentedDataset` seeds a
generator by (seed, epoch, item), so a run is reproducible and a resumed epoch sees the same
augmentations.

Pitch shift and time stretch go through `librosa.effects` (phase vocoder plus resampling) or the
`rubberband` command-line tool (`backend`: "auto" takes rubberband when it is installed).
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import Dataset

from helius.errors import AudioError, ConfigError, MissingToolError

__all__ = [
    "BACKENDS",
    "AugmentDraw",
    "AugmentSettings",
    "AugmentedDataset",
    "apply",
    "augment",
    "draw",
    "generator_for",
    "resolve_backend",
]

Backend = Literal["auto", "librosa", "rubberband"]
BACKENDS = ("auto", "librosa", "rubberband")

# Mixed into the seed of every item's generator: SegmentDataset seeds its random crop with the
# same (seed, epoch, item), and the augmentation should not be a function of the crop offset.
_STREAM = 0x617567  # "aug"
# The phase vocoder's window, in seconds: librosa's default 2048 samples at 22050 Hz.
_WINDOW_SECONDS = 2048 / 22050


@dataclass(frozen=True)
class AugmentSettings:
    """What to augment and how much; `strength` 0 turns every effect off. By default every clip
    gets a gain change and each other effect is applied to half of them."""

    strength: float = 0.5
    sample_rate: int = 22050
    seed: int = 0
    backend: Backend = "auto"
    gain_probability: float = 1.0
    pitch_probability: float = 0.5
    stretch_probability: float = 0.5
    noise_probability: float = 0.5
    max_gain_db: float = 6.0
    max_semitones: float = 2.0
    max_stretch: float = 0.1
    noise_snr_db: float = 30.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength <= 1.0:
            raise ConfigError(f"augmentation strength must be in [0, 1], got {self.strength}")
        if self.sample_rate <= 0:
            raise ConfigError(f"augmentation sample_rate must be > 0, got {self.sample_rate}")
        if self.backend not in BACKENDS:
            raise ConfigError(
                f"unknown augmentation backend {self.backend!r}; use one of {', '.join(BACKENDS)}"
            )
        for name in ("gain", "pitch", "stretch", "noise"):
            probability = getattr(self, f"{name}_probability")
            if not 0.0 <= probability <= 1.0:
                raise ConfigError(f"{name}_probability must be in [0, 1], got {probability}")
        if self.max_gain_db < 0 or self.max_semitones < 0:
            raise ConfigError("max_gain_db and max_semitones must be >= 0")
        if not 0.0 <= self.max_stretch < 1.0:
            raise ConfigError(f"max_stretch must be in [0, 1), got {self.max_stretch}")


@dataclass(frozen=True)
class AugmentDraw:
    """The amounts one augmentation applies; the defaults change nothing."""

    gain_db: float = 0.0
    semitones: float = 0.0
    rate: float = 1.0  # time-stretch rate: > 1 is faster
    snr_db: float = math.inf  # of the added noise; inf: none
    noise_seed: int = 0

    @property
    def is_identity(self) -> bool:
        return (
            self.gain_db == 0.0
            and self.semitones == 0.0
            and self.rate == 1.0
            and math.isinf(self.snr_db)
        )


def generator_for(seed: int, epoch: int, item: int) -> np.random.Generator:
    """The generator that augments `item` in `epoch` of a run seeded with `seed`."""
    return np.random.default_rng([seed, epoch, item, _STREAM])


def draw(settings: AugmentSettings, rng: np.random.Generator) -> AugmentDraw:
    """The amounts of one augmentation (eight uniforms and a noise seed, always in this order)."""
    uniforms = rng.random(8)
    noise_seed = int(rng.integers(0, 2**63 - 1))
    strength = settings.strength
    on = {
        name: bool(uniforms[2 * index] < getattr(settings, f"{name}_probability"))
        for index, name in enumerate(("gain", "pitch", "stretch", "noise"))
    }
    if strength == 0.0:
        return AugmentDraw()
    gain_db = (2 * uniforms[1] - 1) * settings.max_gain_db * strength if on["gain"] else 0.0
    semitones = (2 * uniforms[3] - 1) * settings.max_semitones * strength if on["pitch"] else 0.0
    rate = 1.0 + (2 * uniforms[5] - 1) * settings.max_stretch * strength if on["stretch"] else 1.0
    snr_db = math.inf
    # 1 - u lies in (0, 1], so the log is finite.
    amplitude = strength * (1.0 - uniforms[7])
    if on["noise"]:
        snr_db = settings.noise_snr_db - 20.0 * math.log10(amplitude)
    return AugmentDraw(float(gain_db), float(semitones), float(rate), snr_db, noise_seed)


def resolve_backend(backend: Backend) -> Literal["librosa", "rubberband"]:
    """The backend that `backend` means here; "rubberband" without the tool is an error."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown augmentation backend {backend!r}; use one of {BACKENDS}")
    found = shutil.which("rubberband") is not None
    if backend == "rubberband" and not found:
        raise MissingToolError(
            "augmentation backend 'rubberband' needs the rubberband command-line tool, which is "
            "not on PATH; install it (e.g. apt install rubberband-cli, brew install rubberband) "
            "or use backend 'librosa' or 'auto'"
        )
    if backend == "auto":
        return "rubberband" if found else "librosa"
    return backend


def augment(
    audio: np.ndarray | torch.Tensor, settings: AugmentSettings, rng: np.random.Generator
) -> np.ndarray | torch.Tensor:
    """`audio` ((channels, samples) or (samples,), array or tensor) with one random
    augmentation drawn from `rng`; strength 0 (or no effect drawn) returns `audio` itself."""
    return apply(audio, draw(settings, rng), settings)


def apply(
    audio: np.ndarray | torch.Tensor, amounts: AugmentDraw, settings: AugmentSettings
) -> np.ndarray | torch.Tensor:
    """`audio` with the effects of `amounts` (see the module's docstring for their order)."""
    if amounts.is_identity:
        return audio
    signal = _as_array(audio)
    length = signal.shape[-1]
    if amounts.semitones != 0.0 or amounts.rate != 1.0:
        signal = _shift_and_stretch(signal, amounts.semitones, amounts.rate, settings)
        signal = _fit_length(signal, length)
    if amounts.gain_db != 0.0:
        signal = signal * np.float32(10.0 ** (amounts.gain_db / 20.0))
    if not math.isinf(amounts.snr_db):
        signal = signal + _noise(signal, amounts.snr_db, amounts.noise_seed)
    signal = np.clip(np.nan_to_num(signal, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
    signal = signal.astype(np.float32, copy=False)
    if isinstance(audio, torch.Tensor):
        return torch.from_numpy(np.ascontiguousarray(signal)).to(audio.device)
    return signal


def _as_array(audio: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().cpu().numpy()
    signal = np.asarray(audio, dtype=np.float32)
    if signal.ndim not in (1, 2) or signal.shape[-1] == 0:
        raise ValueError(f"expected (channels, samples) or (samples,) audio, got {signal.shape}")
    return signal


def _fit_length(signal: np.ndarray, length: int) -> np.ndarray:
    """Crop the end, or pad it with silence, to `length` samples."""
    if signal.shape[-1] >= length:
        return signal[..., :length]
    pad = [(0, 0)] * (signal.ndim - 1) + [(0, length - signal.shape[-1])]
    return np.pad(signal, pad)


def _noise(signal: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    """White Gaussian noise whose RMS is exactly `snr_db` below `signal`'s (over all channels)."""
    level = float(np.sqrt(np.mean(np.square(signal, dtype=np.float64))))
    if level == 0.0:
        return np.zeros_like(signal)
    noise = np.random.default_rng(seed).standard_normal(signal.shape)
    noise *= level * 10.0 ** (-snr_db / 20.0) / np.sqrt(np.mean(np.square(noise)))
    return noise.astype(np.float32)


def _shift_and_stretch(
    signal: np.ndarray, semitones: float, rate: float, settings: AugmentSettings
) -> np.ndarray:
    if resolve_backend(settings.backend) == "rubberband":
        return _rubberband(signal, semitones, rate, settings.sample_rate)
    return _librosa(signal, semitones, rate, settings.sample_rate)


def _librosa(signal: np.ndarray, semitones: float, rate: float, sample_rate: int) -> np.ndarray:
    import librosa  # imported here: it takes a second or two, and only augmentation needs it

    # About librosa's own window in seconds at any rate, but never longer than the clip.
    n_fft = 2 ** round(math.log2(_WINDOW_SECONDS * sample_rate))
    while n_fft > max(signal.shape[-1], 16):
        n_fft //= 2
    if semitones != 0.0:
        signal = librosa.effects.pitch_shift(signal, sr=sample_rate, n_steps=semitones, n_fft=n_fft)
    if rate != 1.0:
        signal = librosa.effects.time_stretch(signal, rate=rate, n_fft=n_fft)
    return np.asarray(signal, dtype=np.float32)


def _rubberband(signal: np.ndarray, semitones: float, rate: float, sample_rate: int) -> np.ndarray:
    """Both effects in one run of the rubberband tool, through temporary float WAV files."""
    executable = shutil.which("rubberband")
    if executable is None:
        raise MissingToolError("the rubberband command-line tool is not on PATH")
    frames = signal.T if signal.ndim == 2 else signal
    with tempfile.TemporaryDirectory(prefix="helius-rubberband-") as folder:
        source, target = Path(folder) / "in.wav", Path(folder) / "out.wav"
        sf.write(str(source), frames, sample_rate, subtype="FLOAT")
        # -t is the duration ratio (1 / rate); -p raises the pitch by semitones.
        command = [executable, "-q", "-t", f"{1.0 / rate:.9f}", "-p", f"{semitones:.9f}"]
        result = subprocess.run(
            [*command, str(source), str(target)], capture_output=True, text=True, check=False
        )
        if result.returncode != 0 or not target.is_file():
            raise AudioError(
                f"rubberband failed (exit {result.returncode}): {result.stderr.strip()[-500:]}"
            )
        out, _ = sf.read(str(target), dtype="float32", always_2d=True)
    return out.T if signal.ndim == 2 else out[:, 0]


class AugmentedDataset(Dataset):
    """`base`'s items, augmented: item i of epoch e by `generator_for(seed, e, i)`.

    An item is audio ((channels, samples) tensor or array), or a tuple/list whose first element
    is audio (the rest passes through). `set_epoch` is forwarded to `base` when it has one, so
    the base's random crops keep changing with the epoch too.
    """

    def __init__(self, base: Dataset, settings: AugmentSettings) -> None:
        self.base = base
        self.settings = settings
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if callable(getattr(self.base, "set_epoch", None)):
            self.base.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, item: int) -> Any:
        if item < 0:
            item += len(self)
        value = self.base[item]
        rng = generator_for(self.settings.seed, self.epoch, item)
        if isinstance(value, (tuple, list)):
            return type(value)([augment(value[0], self.settings, rng), *value[1:]])
        return augment(value, self.settings, rng)
