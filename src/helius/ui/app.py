"""The explorer web app: `create_app` wires the session, the API routes and the static page.

    app = create_app("checkpoints/last.pt", data_dir="data")
    uvicorn.run(app, host="127.0.0.1", port=8765)

The page (static/index.html, app.js, style.css) is served from this package: no build step, no
CDN. JSON in, JSON or WAV out; user errors (bad audio, bad preset names, a wrong latent size)
answer 400 with a message, uploads over the limit 413.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.trustedhost import TrustedHostMiddleware

from helius.errors import HeliusError
from helius.ui.routes_map import map_routes
from helius.ui.routes_presets import preset_routes
from helius.ui.routes_sound import sound_routes
from helius.ui.state import DEFAULT_MAX_UPLOAD_BYTES, ExplorerState, UploadTooLarge
from helius.ui.training import TrainingManager, training_routes

STATIC_DIR = Path(__file__).resolve().parent / "static"
DEFAULT_RUN_DIR = Path("explorer_runs")


def create_app(
    checkpoint: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    run_dir: str | os.PathLike = DEFAULT_RUN_DIR,
    device: str = "cpu",
    preset_dir: str | os.PathLike | None = None,
    allowed_hosts: list[str] | None = None,
    vocoder: str | os.PathLike | None = None,
) -> FastAPI:
    """The explorer for a VAE checkpoint (loaded now: a bad checkpoint fails here).

    data_dir: an index file, a prepared data folder or a folder of audio (the Data map).
    run_dir: where training runs started from the page keep their logs and checkpoints.
    preset_dir: where presets live (default: `<checkpoint stem>_presets/` beside it).
    allowed_hosts: Host headers accepted (e.g. ["127.0.0.1", "localhost"] against DNS
    rebinding when serving locally); None accepts any.
    vocoder: for a mel VAE checkpoint, the vocoder its audio comes out through (else
    Griffin-Lim).
    """
    state = ExplorerState(checkpoint, data_dir, max_upload_bytes, device, preset_dir, vocoder)
    training = TrainingManager(run_dir)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        training.shutdown()

    app = FastAPI(title="Helius explorer", lifespan=lifespan, docs_url="/api/docs")
    app.state.explorer = state
    app.state.training = training
    if allowed_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)

    @app.exception_handler(HeliusError)
    async def user_error(_: Request, error: HeliusError) -> JSONResponse:
        status = 413 if isinstance(error, UploadTooLarge) else 400
        return JSONResponse({"detail": str(error)}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        # Without the offending input: it may be huge, or NaN (which JSON cannot carry).
        errors = [
            {"loc": list(item["loc"]), "msg": item["msg"], "type": item["type"]}
            for item in error.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(ValueError)
    async def value_error(_: Request, error: ValueError) -> JSONResponse:
        # The latent maths refuse impossible requests (shapes, ranges) with ValueError.
        return JSONResponse({"detail": str(error)}, status_code=400)

    for router in (
        sound_routes(state),
        map_routes(state),
        preset_routes(state),
        training_routes(training),
    ):
        app.include_router(router)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
