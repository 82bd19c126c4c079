"""The registry of model kinds: one table from a kind's name to everything the commands need.

A config's `model.kind` names its kind; a checkpoint stores the kind it holds. Train, eval,
recon, the loaders, export and the explorer look a kind up here instead of branching on names:

    kind = registry.get("wave_vae")
    kind.config_schema()            # the pydantic schema of a whole config of this kind
    kind.build(config)              # the untrained model, from a validated config alone
    kind.task(config, **options)    # the training task the shared trainer runs
    kind.checkpoint_kind            # what its checkpoints say they hold ("vae", "prior")

Entries name their parts by dotted path ("package.module:attribute") and import them on first
use, so this module imports nothing from helius and every layer may read it; adding a system
is one package, one `register(Kind(...))` (here for built-in systems, or from the system's own
module), and one CLI module (docs/architecture.md, "How to add a system").
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Kind:
    """One model kind: its names and where its config schema, builder and task live."""

    name: str  # the config's model.kind (or the checkpoint's kind, for the prior)
    system: str  # the seed system it belongs to, e.g. "Helius core"
    summary: str  # one line for --help and docs
    checkpoint_kind: str  # stored as a checkpoint's "kind"
    section: str  # the config section holding its settings ("model": model.kind names it)
    config: str  # "module:Schema", the whole config of this kind
    builder: str  # "module:function(config) -> nn.Module"
    task_class: str  # "module:TaskClass", built as TaskClass(config, **options)
    # "module:function(path, device, vocoder) -> model": how the explorer opens a checkpoint of
    # a kind that does not make audio itself (a mel VAE: audio through its vocoder); None:
    # the checkpoint's own model (its encode/decode take and give audio).
    audio_model: str | None = None

    def config_schema(self) -> type:
        return _resolve(self.config)

    def build(self, config: Any) -> Any:
        """The untrained model a validated config of this kind describes."""
        return _resolve(self.builder)(config)

    def task_type(self) -> type:
        return _resolve(self.task_class)

    def task(self, config: Any, **options: Any) -> Any:
        return self.task_type()(config, **options)

    def open_audio_model(self, path: Any, device: Any, vocoder: Any = None) -> Any:
        """The explorer's view of a checkpoint: audio in, latents, audio out."""
        if self.audio_model is None:
            raise ValueError(f"model kind {self.name!r} has no audio_model loader")
        return _resolve(self.audio_model)(path, device, vocoder)


KINDS: dict[str, Kind] = {}
DEFAULT_KIND = "wave_vae"


class UnknownKind(ValueError):
    """A name that no registered kind has (the message lists the known ones)."""


def register(kind: Kind) -> Kind:
    """Add a kind to the table (a name may be registered once)."""
    if kind.name in KINDS and KINDS[kind.name] != kind:
        raise ValueError(f"model kind {kind.name!r} is already registered")
    KINDS[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    """Remove a kind (tests that add a toy system clean up with this)."""
    KINDS.pop(name, None)


def get(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        known = ", ".join(sorted(KINDS))
        raise UnknownKind(f"unknown model kind {name!r}; known kinds: {known}") from None


def kind_of_raw(raw: dict[str, Any]) -> str:
    """The kind plain config data names (model.kind; the default when it names none)."""
    model = raw.get("model")
    kind = model.get("kind") if isinstance(model, dict) else None
    return kind if isinstance(kind, str) else DEFAULT_KIND


def _resolve(path: str) -> Any:
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)


# The built-in systems. The prior is registered under its checkpoint kind: its config is the
# wave VAE's (it is trained on that VAE's latents), so no config names it in model.kind.
register(
    Kind(
        name="wave_vae",
        system="Helius core",
        summary="streaming waveform VAE: a latent sequence, ~40 ms a frame",
        checkpoint_kind="vae",
        section="model",
        config="helius.config.audio:AudioVAEConfig",
        builder="helius.models:build_wave_vae",
        task_class="helius.train.vae_task:VAETask",
    )
)
register(
    Kind(
        name="clip_vae",
        system="LatentAudio",
        summary="one latent per clip, U-Net decoder fed by a skip generator",
        checkpoint_kind="vae",
        section="model",
        config="helius.config.audio:AudioVAEConfig",
        builder="helius.models:build_clip_vae",
        task_class="helius.train.vae_task:VAETask",
    )
)
register(
    Kind(
        name="prior",
        system="Helius core",
        summary="GRU or Transformer prior over a wave VAE's latent sequence (dream)",
        checkpoint_kind="prior",
        section="prior",
        config="helius.config.audio:AudioVAEConfig",
        builder="helius.models:build_prior",
        task_class="helius.train.prior_task:PriorTask",
    )
)
register(
    Kind(
        name="vocoder",
        system="HarmonicVAE",
        summary="mel spectrogram -> waveform (ConvNeXt backbone, inverse-STFT head)",
        checkpoint_kind="vocoder",
        section="model",
        config="helius.harmonic.vocoder_config:VocoderConfig",
        builder="helius.harmonic.vocoder:build",
        task_class="helius.harmonic.vocoder_task:VocoderTask",
    )
)
register(
    Kind(
        name="mel_vae",
        system="HarmonicVAE",
        summary="one latent per log-mel patch (mlp or conv), psychoacoustic objective",
        checkpoint_kind="mel_vae",
        section="model",
        config="helius.harmonic.config:MelVAEConfig",
        builder="helius.harmonic.mel_vae:build",
        task_class="helius.harmonic.mel_task:MelVAETask",
        audio_model="helius.harmonic.inverters:load_mel_clip_vae",
    )
)
register(
    Kind(
        name="pointer_editor",
        system="Audio Editor",
        summary="pointer network that edits music by copying raw frames (cuts, loops, fades)",
        checkpoint_kind="pointer_editor",
        section="model",
        config="helius.edit.config:PointerEditorConfig",
        builder="helius.edit.model:build",
        task_class="helius.edit.task:PointerEditorTask",
    )
)
