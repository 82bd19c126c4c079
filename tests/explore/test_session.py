"""ExplorerSession on tiny (untrained) clip and wave VAEs: shapes, lazy load, unload, threads."""

from __future__ import annotations

import math
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import REPO, TINY_CLIP_OVERRIDES, noise, sine, tiny_config, write

from helius.config import load_config
from helius.explore import ExplorerSession
from helius.models import build_model
from helius.models.checkpoint import save_checkpoint

SAMPLE_RATE = 16000
CLIP_SAMPLES = 4000  # 0.25 s


def _save(path: Path, config) -> Path:
    torch.manual_seed(0)
    model = build_model(config.model, config.data.sample_rate, 1)
    payload = {
        "kind": "vae",
        "config": config.model_dump(mode="json"),
        "model": model.state_dict(),
        "ema": None,
    }
    return save_checkpoint(path, payload)


@pytest.fixture(scope="module")
def clip_checkpoint(tmp_path_factory) -> Path:
    config = load_config(
        REPO / "configs" / "clip.yaml",
        TINY_CLIP_OVERRIDES,
    )
    return _save(tmp_path_factory.mktemp("clip") / "clip.pt", config)


@pytest.fixture(scope="module")
def wave_checkpoint(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("wave")
    return _save(root / "wave.pt", tiny_config(root))


def test_clip_session_loads_lazily_and_reports_its_sizes(clip_checkpoint: Path) -> None:
    session = ExplorerSession(clip_checkpoint)
    assert not session.loaded
    assert (session.kind, session.latent_dim, session.sample_rate) == ("clip_vae", 4, 16000)
    assert session.loaded and session.hop_samples == CLIP_SAMPLES
    session.unload()
    assert not session.loaded
    assert session.kind == "clip_vae" and not session.loaded  # sizes need no model


def test_clip_encode_takes_the_first_clip_and_pads_short_audio(clip_checkpoint: Path) -> None:
    session = ExplorerSession(clip_checkpoint)
    long_audio = sine(0.6, SAMPLE_RATE, 220.0)
    latent = session.encode_audio(long_audio)
    assert latent.shape == (4,) and latent.dtype == torch.float32 and not latent.requires_grad
    assert torch.equal(latent, session.encode_audio(long_audio[:, :CLIP_SAMPLES]))
    short = long_audio[:, :1000]
    padded = np.pad(short, ((0, 0), (0, CLIP_SAMPLES - 1000)))
    assert torch.equal(session.encode_audio(short), session.encode_audio(padded))
    assert torch.equal(session.encode_audio(short[0]), session.encode_audio(short))  # (T,)
    stereo = np.concatenate([long_audio, long_audio])
    assert torch.allclose(session.encode_audio(stereo), latent)  # downmixed to the model's mono


def test_clip_decode_matches_the_model_and_refuses_trajectories(clip_checkpoint: Path) -> None:
    session = ExplorerSession(clip_checkpoint)
    latents = session.sample_prior(3, seed=1)
    assert torch.equal(latents, session.sample_prior(3, seed=1))
    assert latents.shape == (3, 4)
    audio = session.decode(latents[0])
    assert audio.shape == (1, CLIP_SAMPLES) and audio.dtype == np.float32
    with torch.no_grad():
        expected = session.model().decode(latents[:1])[0].numpy()
    np.testing.assert_array_equal(audio, expected)
    batch = session.decode_batch(latents)
    assert batch.shape == (3, 1, CLIP_SAMPLES)
    np.testing.assert_allclose(batch[0], audio, atol=1e-6)
    with pytest.raises(ValueError, match="vector"):
        session.decode(torch.zeros(4, 10))
    with pytest.raises(ValueError, match="latents"):
        session.decode(torch.zeros(5))


def test_files_and_datasets_are_encoded_at_the_model_rate(
    clip_checkpoint: Path, tmp_path: Path
) -> None:
    session = ExplorerSession(clip_checkpoint)
    paths = []
    for index in range(4):
        audio = sine(0.25, 8000, 200.0 * (index + 1)) + noise(0.25, 8000, 0.05, seed=index)
        paths.append(write(tmp_path / f"sound_{index}.wav", audio, 8000))
    resampled = session.encode_file(paths[0])
    assert resampled.shape == (4,)
    positions = session.encode_dataset(paths)
    assert positions.shape == (4, 4)
    assert torch.equal(positions[0], resampled)
    assert session.encode_dataset(paths, max_items=2).shape == (2, 4)
    assert session.encode_dataset([]).shape == (0, 4)


def test_unload_and_reload_give_the_same_sound(clip_checkpoint: Path) -> None:
    session = ExplorerSession(clip_checkpoint)
    latent = session.sample_prior(1, seed=3)[0]
    before = session.decode(latent)
    session.unload()
    assert not session.loaded
    np.testing.assert_array_equal(session.decode(latent), before)
    assert session.loaded


def test_threads_share_one_session_safely(clip_checkpoint: Path) -> None:
    session = ExplorerSession(clip_checkpoint)
    latents = session.sample_prior(8, seed=4)
    expected = [session.decode(latent) for latent in latents]
    session.unload()  # the threads race to load it again
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            for _ in range(3):
                results[index] = session.decode(latents[index])
                if index == 0:
                    session.unload()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for index in range(8):
        np.testing.assert_array_equal(results[index], expected[index])


def test_wave_session_trajectories(wave_checkpoint: Path) -> None:
    session = ExplorerSession(wave_checkpoint)
    assert session.kind == "wave_vae" and session.latent_dim == 4
    hop = session.hop_samples
    assert hop == 128
    audio = sine(0.1, SAMPLE_RATE, 330.0)  # 1600 samples: 12.5 frames, padded to 13
    trajectory = session.encode_audio(audio)
    assert trajectory.shape == (4, math.ceil(1600 / hop))
    position = session.mean_latent(trajectory)
    assert torch.allclose(position, trajectory.mean(dim=1))
    assert torch.equal(session.mean_latent(position), position)
    # A vector is held for one second's worth of frames; a trajectory decodes as it is.
    frames = session.default_frames
    assert frames == math.ceil(SAMPLE_RATE / hop)
    assert session.decode(position).shape == (1, frames * hop)
    assert session.decode(position, frames=5).shape == (1, 5 * hop)
    np.testing.assert_allclose(
        session.decode(position, frames=5),
        session.decode(position[:, None].expand(4, 5)),
        atol=1e-6,
    )
    assert session.decode(trajectory).shape == (1, trajectory.shape[1] * hop)
    offset = torch.tensor([1.0, 0.0, -1.0, 0.5])
    moved = session.offset_trajectory(trajectory, offset)
    assert torch.allclose(moved - trajectory, offset[:, None].expand_as(trajectory))
    assert torch.allclose(session.mean_latent(moved), position + offset)
    with pytest.raises(ValueError, match="offset"):
        session.offset_trajectory(trajectory, torch.zeros(3))


def test_wave_dataset_positions_are_mean_latents(wave_checkpoint: Path, tmp_path: Path) -> None:
    session = ExplorerSession(wave_checkpoint)
    paths = [
        write(tmp_path / f"tone_{k}.wav", sine(0.2 + 0.1 * k, SAMPLE_RATE, 100.0 * (k + 1)), 16000)
        for k in range(3)
    ]
    positions = session.encode_dataset(paths)
    assert positions.shape == (3, 4)
    assert torch.allclose(positions[2], session.encode_file(paths[2]).mean(dim=1))
    batch = session.decode_batch(session.sample_prior(2, seed=0), frames=3)
    assert batch.shape == (2, 1, 3 * session.hop_samples)


def test_the_model_loads_and_runs_on_one_thread_whoever_calls(
    clip_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loading (also through `config`), encoding and decoding all happen on the session's
    model thread, so a web server's many request threads never start more CPU thread pools."""
    import helius.explore.session as session_module

    seen: set[str] = set()
    real_load = session_module.load_vae

    def recording_load(*args, **kwargs):
        seen.add(threading.current_thread().name)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(session_module, "load_vae", recording_load)
    session = ExplorerSession(clip_checkpoint)
    assert session.latent_dim > 0  # reading the config loads the model
    model = session.model()

    def record(module, inputs) -> None:
        seen.add(threading.current_thread().name)

    model.decoder.register_forward_pre_hook(record)
    model.encoder.register_forward_pre_hook(record)
    callers = [
        threading.Thread(target=session.decode, args=(torch.zeros(session.latent_dim),)),
        threading.Thread(target=session.encode_audio, args=(np.zeros((1, 800), np.float32),)),
    ]
    for caller in callers:
        caller.start()
        caller.join()
    session.decode(torch.zeros(session.latent_dim))
    assert len(seen) == 1 and next(iter(seen)).startswith("helius-model")
    assert session.run(threading.current_thread).name == next(iter(seen))
