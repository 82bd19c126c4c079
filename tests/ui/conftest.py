"""Fixtures for the explorer tests: tiny clip and wave VAE checkpoints, clips, test clients."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import REPO, noise, sine, tiny_config, write
from ui_helpers import CLIP_OVERRIDES, SAMPLE_RATE, save_untrained

from helius.config import load_config


@pytest.fixture(scope="session")
def clip_checkpoint(tmp_path_factory) -> Path:
    config = load_config(REPO / "configs" / "clip.yaml", CLIP_OVERRIDES)
    return save_untrained(tmp_path_factory.mktemp("clip_model") / "clip.pt", config)


@pytest.fixture(scope="session")
def wave_checkpoint(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("wave_model")
    return save_untrained(root / "wave.pt", tiny_config(root))


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> Path:
    """A folder of six short sounds (sines and noise) for the Data map and uploads."""
    folder = tmp_path_factory.mktemp("clips")
    for index in range(4):
        tone = sine(0.3, SAMPLE_RATE, 220.0 * (index + 1))
        write(folder / f"sine_{index}.wav", tone, SAMPLE_RATE)
    for index in range(2):
        write(folder / f"noise_{index}.wav", noise(0.3, SAMPLE_RATE, seed=index), SAMPLE_RATE)
    return folder


@pytest.fixture
def make_client(tmp_path, clip_checkpoint, clips):
    """make_client(**create_app kwargs) -> a TestClient; presets and runs live in tmp_path."""
    from fastapi.testclient import TestClient

    from helius.ui import create_app

    clients = []

    def make(checkpoint=None, **kwargs):
        kwargs.setdefault("data_dir", clips)
        kwargs.setdefault("run_dir", tmp_path / "runs")
        kwargs.setdefault("preset_dir", tmp_path / "presets")
        client = TestClient(create_app(checkpoint or clip_checkpoint, **kwargs))
        clients.append(client.__enter__())
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client):
    return make_client()
