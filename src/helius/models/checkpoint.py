"""Checkpoints: atomic saves, safe loads (weights_only), and rebuilding a model from one file.

A checkpoint is a plain dict of tensors and builtins, so `torch.load(weights_only=True)` reads
it without unpickling arbitrary objects:
  format, kind (what it holds: "vae", "prior"; see helius.registry), config (its system's
  resolved config as plain data),
  model (state dict), ema (state dict or None), optimizer, scheduler, step, epoch,
  batches_in_epoch, rng, metrics, latent_health, helius_version.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from helius import __version__, registry
from helius.config import HeliusConfig, validate_config
from helius.errors import HeliusError
from helius.files import atomic_output

FORMAT = "helius-checkpoint-1"


class CheckpointError(HeliusError):
    """A checkpoint is missing, unreadable, or not the kind of model asked for."""


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write a checkpoint atomically (a crash never leaves a half-written file)."""
    payload = {"format": FORMAT, "helius_version": __version__, **payload}
    with atomic_output(path) as tmp_path:
        torch.save(payload, tmp_path)
    return Path(path)


def load_checkpoint(
    path: str | os.PathLike, kind: str | None = None, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Read a checkpoint safely; `kind` ("vae", "prior") checks what it holds."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # a corrupt file fails in many ways (KeyError, EOFError, ...)
        raise CheckpointError(
            f"{path} is not a readable Helius checkpoint ({str(error).splitlines()[0][:200]})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a Helius checkpoint (no '{FORMAT}' marker)")
    if kind is not None and payload.get("kind") != kind:
        raise CheckpointError(
            f"{path} holds a {payload.get('kind')} model, but a {kind} checkpoint is needed here"
        )
    return payload


def checkpoint_config(payload: dict[str, Any], path: str | os.PathLike = "") -> Any:
    """The resolved config stored in a checkpoint, validated by its kind's schema (configs
    stored before `prior.train` existed load too: the prior's schema moves their keys)."""
    return validate_config(payload["config"], f"config stored in {path}")


def checkpoint_kind_entry(payload: dict[str, Any], config: Any, path) -> registry.Kind:
    """The registry entry of the model a checkpoint holds: the kinds that write its stored
    `kind`, narrowed by the config's model.kind where several do (wave_vae, clip_vae)."""
    stored = payload.get("kind")
    candidates = [k for k in registry.KINDS.values() if k.checkpoint_kind == stored]
    if len(candidates) > 1:
        candidates = [k for k in candidates if k.name == config.model.kind]
    if len(candidates) != 1:
        raise CheckpointError(f"{path} holds a model of kind {stored!r} that no system builds")
    return candidates[0]


def load_model(
    path: str | os.PathLike,
    kind: str | None = None,
    map_location: str | torch.device = "cpu",
    use_ema: bool = True,
) -> tuple[nn.Module, Any]:
    """Rebuild any registered model (eval mode) from its checkpoint alone; `kind` ("vae",
    "prior", ...) checks what the file holds. Returns the model and the stored config."""
    payload = load_checkpoint(path, kind=kind, map_location=map_location)
    config = checkpoint_config(payload, path)
    entry = checkpoint_kind_entry(payload, config, path)
    model = entry.build(config)
    state = payload["ema"] if use_ema and payload.get("ema") else payload["model"]
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise CheckpointError(
            f"{path}: weights do not fit the {entry.name} architecture in its config "
            f"({str(error).splitlines()[0][:200]}); was it written by another Helius version?"
        ) from None
    return model.to(map_location).eval(), config


def load_vae(
    path: str | os.PathLike, map_location: str | torch.device = "cpu", use_ema: bool = True
) -> tuple[nn.Module, Any]:
    """Rebuild a trained VAE (wave_vae or clip_vae, eval mode) from its checkpoint alone."""
    return load_model(path, "vae", map_location, use_ema)


def load_prior(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, Any]:
    """Rebuild a trained latent prior (eval mode) from its checkpoint alone."""
    return load_model(path, "prior", map_location)


def rotate(folder: Path, pattern: str, keep: int) -> None:
    """Delete all but the `keep` newest files matching `pattern` (by the number in the name)."""

    def number(path: Path) -> int:
        digits = "".join(ch for ch in path.stem if ch.isdigit())
        return int(digits) if digits else -1

    for old in sorted(folder.glob(pattern), key=number)[:-keep]:
        old.unlink(missing_ok=True)


def check_pair(vae_config: HeliusConfig, prior_config: HeliusConfig, prior_path) -> None:
    """A prior only fits the VAE whose latents it learned: same latent size and frame rate."""
    vae_model, prior_model = vae_config.model, prior_config.model
    if (
        vae_model.latent_dim != prior_model.latent_dim
        or vae_model.model_dump() != prior_model.model_dump()
        or vae_config.data.sample_rate != prior_config.data.sample_rate
    ):
        raise CheckpointError(
            f"{prior_path} was trained on the latents of a different VAE (latent_dim "
            f"{prior_model.latent_dim}, {prior_config.data.sample_rate} Hz); train a prior for "
            "this VAE with `helius train-prior --vae_ckpt ...`"
        )
