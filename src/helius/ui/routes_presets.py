"""Explorer routes of the latent presets: list, save, load, rename, delete.

Names travel in JSON bodies, never in the URL path, so every name reaches `PresetStore`'s
check (a name like `../evil` is refused with a 400 rather than routed somewhere else).
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from helius.explore import PresetError, check_preset_name
from helius.ui.schemas import PresetName, PresetRename, PresetSave
from helius.ui.state import ExplorerState


def preset_routes(state: ExplorerState) -> APIRouter:
    router = APIRouter(prefix="/api/presets")
    store = state.presets

    def missing(name: str) -> bool:
        return not store.path_of(check_preset_name(name)).is_file()

    @router.get("")
    def list_presets() -> dict:
        presets = []
        for name in store.list():
            try:
                latent, meta = store.load(name)
            except PresetError:  # deleted or renamed since listing, or broken by hand
                continue
            presets.append({"name": name, "meta": meta, "shape": list(latent.shape)})
        return {"presets": presets, "folder": str(store.folder)}

    @router.post("")
    def save(body: PresetSave) -> dict:
        latent = state.latent(body.latent)
        meta = {**body.meta, "kind": state.session.kind, "checkpoint": state.checkpoint.name}
        store.save(body.name, latent, meta)
        return {"name": body.name}

    @router.post("/load")
    def load(body: PresetName) -> dict:
        if missing(body.name):
            raise HTTPException(404, f"no preset named {body.name!r}")
        latent, meta = store.load(body.name)
        if latent.shape != (state.session.latent_dim,):
            raise HTTPException(
                400,
                f"preset {body.name!r} holds a latent of shape {tuple(latent.shape)}; this "
                f"model needs ({state.session.latent_dim},): it was saved with another model",
            )
        return {"name": body.name, "latent": latent.tolist(), "meta": meta}

    @router.post("/rename")
    def rename(body: PresetRename) -> dict:
        check_preset_name(body.new)
        if missing(body.old):
            raise HTTPException(404, f"no preset named {body.old!r}")
        store.rename(body.old, body.new)
        return {"name": body.new}

    @router.post("/delete")
    def delete(body: PresetName) -> dict:
        if missing(body.name):
            raise HTTPException(404, f"no preset named {body.name!r}")
        store.delete(body.name)
        return {"deleted": body.name}

    return router
