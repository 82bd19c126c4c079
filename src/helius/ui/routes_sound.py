"""Explorer routes that make or move sounds: decode, random, Recon upload, morph, walk,
variations, attributes, and the model's unload/reload."""

from __future__ import annotations

import torch
from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool

from helius.errors import HeliusError
from helius.explore import ATTRIBUTES, PROJECTIONS, morph_path, move, random_walk, variations
from helius.ui.schemas import (
    AttributeMoveRequest,
    DecodeRequest,
    MorphRequest,
    RandomRequest,
    SequenceRequest,
    VariationsRequest,
    WalkRequest,
)
from helius.ui.state import MAP_MODES, MAX_UPLOAD_SECONDS, ExplorerState, receive_upload

WAV = "audio/wav"


def sound_routes(state: ExplorerState) -> APIRouter:
    router = APIRouter(prefix="/api")
    session = state.session

    @router.get("/info")
    def info() -> dict:
        frames_per_sound = 1 if session.per_clip else session.default_frames
        return {
            "checkpoint": state.checkpoint.name,
            "kind": session.kind,
            "audio_out": _audio_out(session),
            "latent_dim": session.latent_dim,
            "sample_rate": session.sample_rate,
            "channels": session.channels,
            "seconds_per_sound": frames_per_sound * session.hop_samples / session.sample_rate,
            "loaded": session.loaded,
            "has_data": state.data_dir is not None,
            "data": str(state.data_dir) if state.data_dir else None,
            "map_modes": list(MAP_MODES),
            "projections": list(PROJECTIONS),
            "attributes": list(ATTRIBUTES),
            "max_upload_bytes": state.max_upload_bytes,
            "max_upload_seconds": MAX_UPLOAD_SECONDS,
        }

    @router.post("/unload")
    def unload() -> dict:
        session.unload()
        return {"loaded": session.loaded}

    @router.post("/load")
    def load() -> dict:
        session.model()
        return {"loaded": session.loaded}

    @router.post("/decode")
    def decode(body: DecodeRequest) -> Response:
        audio = state.render(state.latent(body.latent), state.trajectory(body.base))
        return Response(state.wav(audio), media_type=WAV)

    @router.post("/sequence")
    def sequence(body: SequenceRequest) -> Response:
        latents = torch.stack([state.latent(values) for values in body.latents])
        return Response(state.wav(state.render_sequence(latents)), media_type=WAV)

    @router.post("/random")
    def random(body: RandomRequest) -> dict:
        latents = body.temperature * session.sample_prior(body.count, seed=body.seed)
        return {"latents": latents.tolist()}

    @router.post("/encode")
    async def encode(request: Request) -> dict:
        """Recon: encode an uploaded sound; its latent (and a wave VAE's trajectory)."""
        path = await receive_upload(request, state.max_upload_bytes)
        try:
            audio = await run_in_threadpool(state.load_audio, path)
            encoded = await run_in_threadpool(session.encode_audio, audio)
        except HeliusError as error:  # name the upload, not our temp file
            message = str(error).replace(str(path), "the uploaded file")
            raise HTTPException(400, message) from None
        finally:
            path.unlink(missing_ok=True)
        trajectory = encoded.tolist() if encoded.ndim == 2 else None
        return {
            "latent": session.mean_latent(encoded).tolist(),
            "trajectory": trajectory,
            "seconds": audio.shape[1] / session.sample_rate,
        }

    @router.post("/morph")
    def morph(body: MorphRequest) -> dict:
        path = morph_path(state.latent(body.a), state.latent(body.b), body.steps, body.mode)
        return {"latents": path.tolist()}

    @router.post("/walk")
    def walk(body: WalkRequest) -> dict:
        path = random_walk(
            state.latent(body.start),
            body.steps,
            step_size=body.step_size,
            momentum=body.momentum,
            pull=body.pull,
            temperature=body.temperature,
            seed=body.seed,
        )
        return {"latents": path.tolist()}

    @router.post("/variations")
    def make_variations(body: VariationsRequest) -> dict:
        found = variations(state.latent(body.center), body.count, body.sigma, seed=body.seed)
        return {"latents": found.tolist()}

    @router.get("/attributes")
    def attributes() -> dict:
        directions = state.directions()
        return {
            "names": list(ATTRIBUTES),
            "directions": {name: directions[name].tolist() for name in ATTRIBUTES},
            # A model whose decoded sounds never vary in an attribute has no direction for it.
            "flat": [name for name in ATTRIBUTES if not torch.any(directions[name])],
        }

    @router.post("/attributes/move")
    def attributes_move(body: AttributeMoveRequest) -> dict:
        directions = state.directions()
        latent = state.latent(body.latent)
        for name, amount in body.amounts.items():
            latent = move(latent, directions[name], amount)
        return {"latent": latent.tolist()}

    return router


def _audio_out(session) -> str:
    """How the model's latents become audio: its own decoder, or a mel VAE's inverter."""
    if session.kind != "mel_vae":
        return "decoder"
    return f"vocoder {session.vocoder.name}" if session.vocoder else "Griffin-Lim"
