"""Explorer routes of the sound map: points of a mode (Data, Model, Synth), picking a point
(Snap to the nearest or Blend the k nearest) and placing any latent on the map."""

from __future__ import annotations

from typing import Annotated

import numpy as np
import torch
from fastapi import APIRouter, HTTPException, Query
from fastapi.concurrency import run_in_threadpool

from helius.explore import ATTRIBUTES, idw_blend, idw_weights, nearest
from helius.ui.schemas import LocateRequest, MapQuery, PickRequest
from helius.ui.state import ExplorerState, SoundMap


def map_routes(state: ExplorerState) -> APIRouter:
    router = APIRouter(prefix="/api/map")
    session = state.session

    def sound_map(query: MapQuery) -> SoundMap:
        return state.sound_map(query.mode, query.method, query.seed, query.temperature)

    @router.get("")
    def get_map(query: Annotated[MapQuery, Query()], color: str | None = None) -> dict:
        """Points as a flat [x0, y0, x1, y1, ...] list; `color` adds 0..1 values per point."""
        found = sound_map(query)
        colors = None
        if color:
            if color not in ATTRIBUTES:
                raise HTTPException(400, f"color by one of {', '.join(ATTRIBUTES)}")
            # Predicted along the attribute's latent direction (instant for 5000 points), as
            # ranks 0..1 so that a few outliers do not squash everyone else's colour.
            values = (found.latents.double() @ state.directions()[color].double()).numpy()
            ranks = values.argsort(kind="stable").argsort(kind="stable")
            colors = np.round(ranks / max(1, len(values) - 1), 3).tolist()
        return {
            "mode": found.mode,
            "method": query.method,
            "count": len(found.positions),
            "points": np.round(found.positions, 4).ravel().tolist(),
            "labels": found.labels,
            "color": colors,
        }

    @router.post("/pick")
    async def pick(body: PickRequest) -> dict:
        """The latent under (x, y): the nearest point's (snap) or the k nearest blended."""
        found = await run_in_threadpool(sound_map, body)
        if not len(found.positions):
            raise HTTPException(400, f"the {body.mode} map has no points")
        query = np.array([body.x, body.y])
        if body.snap:
            index = nearest(found.positions, query)
            neighbours, weights = [index], [1.0]
            latent = found.latents[index]
            x, y = found.positions[index]
        else:
            indices, blend_weights = idw_weights(found.positions, query, body.k)
            neighbours, weights = indices.tolist(), blend_weights.tolist()
            latent = idw_blend(found.positions, found.latents, query, body.k).float()
            x, y = body.x, body.y
        trajectory = None
        if body.snap and body.mode == "data" and session.kind == "wave_vae":
            # A data point's sound is its file's reconstruction: the whole trajectory.
            path = state.data_paths()[neighbours[0]]
            audio = await run_in_threadpool(state.load_audio, path)
            trajectory = (await run_in_threadpool(session.encode_audio, audio)).tolist()
        return {
            "latent": latent.tolist(),
            "trajectory": trajectory,
            "index": neighbours[0] if body.snap else None,
            "label": found.labels[neighbours[0]] if body.snap and found.labels else None,
            "neighbours": neighbours,
            "weights": weights,
            "x": float(x),
            "y": float(y),
        }

    @router.post("/locate")
    def locate(body: LocateRequest) -> dict:
        """Where latents sit on the map: each one's 4 nearest points (in latent space), weighted
        by inverse squared distance, as for a blend read backwards."""
        found = sound_map(body)
        if not len(found.positions):
            raise HTTPException(400, f"the {body.mode} map has no points")
        latents = torch.stack([state.latent(values) for values in body.latents])
        distances = torch.cdist(latents.double(), found.latents.double())
        count = min(4, found.latents.shape[0])
        nearest_distances, indices = torch.topk(distances, count, largest=False)
        weights = 1.0 / (nearest_distances**2 + 1e-12)  # a latent on a point stays on it
        weights = weights / weights.sum(dim=1, keepdim=True)
        positions = torch.from_numpy(found.positions)[indices]  # (L, count, 2)
        located = (weights[..., None] * positions).sum(dim=1)
        return {"positions": np.round(located.numpy(), 4).tolist()}

    return router
