"""Request bodies of the explorer API: pydantic models with the bounds every value must keep.

Bounds are part of the server's safety: a request cannot ask for a thousand-step morph or a
latent full of NaN. Shapes that depend on the model (D) are checked by `ExplorerState`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

LATENT_LIMIT = 100.0  # |value| of any latent coordinate; N(0, I) samples stay within ~5
MAX_STEPS = 64  # morph / walk / sequence lengths
MAX_FRAMES = 10_000  # of a wave VAE trajectory sent back for decoding

Finite = Annotated[float, Field(allow_inf_nan=False, ge=-LATENT_LIMIT, le=LATENT_LIMIT)]
Vector = Annotated[list[Finite], Field(min_length=1, max_length=128)]
Trajectory = Annotated[
    list[Annotated[list[Finite], Field(min_length=1, max_length=MAX_FRAMES)]],
    Field(min_length=1, max_length=128),
]
Seed = Annotated[int, Field(ge=0, le=2**31 - 1)]
MapMode = Literal["data", "model", "synth"]
Projection = Literal["pca", "tsne", "umap"]


class DecodeRequest(BaseModel):
    latent: Vector
    base: Trajectory | None = Field(
        None, description="wave VAE: a recon trajectory (D, frames) moved to `latent`"
    )


class SequenceRequest(BaseModel):
    latents: Annotated[list[Vector], Field(min_length=1, max_length=MAX_STEPS)]


class RandomRequest(BaseModel):
    count: int = Field(1, ge=1, le=MAX_STEPS)
    temperature: float = Field(1.0, ge=0, le=5)
    seed: Seed = 0


class MorphRequest(BaseModel):
    a: Vector
    b: Vector
    steps: int = Field(8, ge=2, le=MAX_STEPS)
    mode: Literal["linear", "slerp"] = "slerp"


class WalkRequest(BaseModel):
    start: Vector
    steps: int = Field(16, ge=1, le=MAX_STEPS)
    step_size: float = Field(0.3, ge=0, le=10)
    momentum: float = Field(0.8, ge=0, lt=1)
    pull: float = Field(0.05, ge=0, lt=1)
    temperature: float = Field(1.0, ge=0, le=10)
    seed: Seed = 0


class VariationsRequest(BaseModel):
    center: Vector
    count: int = Field(8, ge=1, le=32)
    sigma: float = Field(0.5, ge=0, le=5)
    seed: Seed = 0


class AttributeMoveRequest(BaseModel):
    latent: Vector
    amounts: dict[Literal["brightness", "noisiness", "loudness"], Finite]


class MapQuery(BaseModel):
    mode: MapMode = "model"
    method: Projection = "pca"
    seed: Seed = 0
    temperature: float = Field(1.0, gt=0, le=5)


class PickRequest(MapQuery):
    x: float = Field(ge=-10, le=10)
    y: float = Field(ge=-10, le=10)
    snap: bool = True
    k: int = Field(4, ge=1, le=32)


class LocateRequest(MapQuery):
    latents: Annotated[list[Vector], Field(min_length=1, max_length=MAX_STEPS)]


class PresetSave(BaseModel):
    name: str = Field(max_length=200)
    latent: Vector
    meta: dict[str, Any] = Field(default_factory=dict)


class PresetName(BaseModel):
    name: str = Field(max_length=200)


class PresetRename(BaseModel):
    old: str = Field(max_length=200)
    new: str = Field(max_length=200)


class TrainRequest(BaseModel):
    config: str | None = Field(None, max_length=1000, description="YAML file; None: defaults")
    fields: dict[str, str | float | int | bool | None] = Field(default_factory=dict)
    overrides: list[Annotated[str, Field(max_length=1000)]] = Field(
        default_factory=list, max_length=64
    )
