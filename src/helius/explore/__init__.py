"""Latent maths for the explorer: interpolation, walks, variations, blending, attribute
directions, the sound map, presets and the model session they all work through."""

from __future__ import annotations

from helius.explore.attributes import (
    ATTRIBUTES,
    direction_from_examples,
    directions_from_samples,
    measure,
    move,
)
from helius.explore.blend import idw_blend, idw_weights, nearest
from helius.explore.interpolate import MORPH_MODES, lerp, morph_path, slerp
from helius.explore.presets import PresetError, PresetStore, check_preset_name
from helius.explore.session import ExplorerSession
from helius.explore.soundmap import PROJECTIONS, cached_projection, project
from helius.explore.variations import variations
from helius.explore.walk import random_walk, stationary_std

__all__ = [
    "ATTRIBUTES",
    "MORPH_MODES",
    "PROJECTIONS",
    "ExplorerSession",
    "PresetError",
    "PresetStore",
    "cached_projection",
    "check_preset_name",
    "direction_from_examples",
    "directions_from_samples",
    "idw_blend",
    "idw_weights",
    "lerp",
    "measure",
    "morph_path",
    "move",
    "nearest",
    "project",
    "random_walk",
    "slerp",
    "stationary_std",
    "variations",
]
