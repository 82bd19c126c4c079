"""Helpers of the explorer tests: tiny checkpoints and a real server in a thread."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from helpers import TINY_CLIP_OVERRIDES

from helius.models import build_model
from helius.models.checkpoint import save_checkpoint

SAMPLE_RATE = 16000
CLIP_OVERRIDES = TINY_CLIP_OVERRIDES


def save_untrained(path: Path, config) -> Path:
    torch.manual_seed(0)
    model = build_model(config.model, config.data.sample_rate)
    payload = {"config": config.model_dump(mode="json"), "model": model.state_dict()}
    return save_checkpoint(path, {"kind": "vae", **payload, "ema": None})


@contextlib.contextmanager
def running_server(app) -> Iterator[str]:
    """Serve `app` with uvicorn on a free 127.0.0.1 port in a thread; yields its base URL."""
    import uvicorn

    from helius.ui.training import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
