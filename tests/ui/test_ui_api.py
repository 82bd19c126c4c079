"""The explorer API, endpoint by endpoint, against tiny untrained clip and wave VAEs."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
import soundfile as sf
import torch
from ui_helpers import SAMPLE_RATE

from helius.explore import ExplorerSession, PresetStore, morph_path, random_walk, variations

CLIP_SAMPLES = SAMPLE_RATE // 4  # clip_seconds=0.25


def wav(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/wav"
    audio, rate = sf.read(io.BytesIO(response.content), dtype="float32", always_2d=True)
    assert rate == SAMPLE_RATE
    return audio.T


def test_page_and_its_files_are_served_locally(client):
    page = client.get("/")
    assert page.status_code == 200 and "Helius explorer" in page.text
    for name in ("app.js", "map.js", "tabs.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200
    # Nothing from a CDN: every script and stylesheet comes from this server.
    assert not re.search(r"""(src|href)=["']https?://""", page.text)
    assert "http" not in client.get("/static/style.css").text


def test_info_describes_the_model(client, clips):
    info = client.get("/api/info").json()
    assert info["kind"] == "clip_vae" and info["latent_dim"] == 4
    assert info["sample_rate"] == SAMPLE_RATE and info["seconds_per_sound"] == 0.25
    assert info["loaded"] and info["has_data"] and info["data"] == str(clips)
    assert info["map_modes"] == ["data", "model", "synth"]
    assert info["attributes"] == ["brightness", "noisiness", "loudness"]


def test_decode_gives_the_sessions_audio_as_16_bit_wav(client, clip_checkpoint):
    latent = [0.5, -1.0, 0.25, 2.0]
    audio = wav(client.post("/api/decode", json={"latent": latent}))
    assert audio.shape == (1, CLIP_SAMPLES)
    expected = ExplorerSession(clip_checkpoint).decode(torch.tensor(latent))
    np.testing.assert_allclose(audio, expected, atol=1.5 / 32768)
    other = wav(client.post("/api/decode", json={"latent": [0.0, 0.0, 0.0, 0.0]}))
    assert not np.allclose(audio, other)


def test_decode_refuses_wrong_sizes_and_non_numbers(client):
    response = client.post("/api/decode", json={"latent": [0.0, 1.0]})
    assert response.status_code == 400 and "needs 4" in response.json()["detail"]
    nan = client.post(
        "/api/decode",
        content=b'{"latent": [NaN, 0, 0, 0]}',
        headers={"Content-Type": "application/json"},
    )
    assert nan.status_code == 422
    assert client.post("/api/decode", json={"latent": [1e9, 0, 0, 0]}).status_code == 422
    clip_base = {"latent": [0.0] * 4, "base": [[0.0]] * 4}
    assert client.post("/api/decode", json=clip_base).status_code == 400


def test_sequence_is_every_latent_one_after_another(client):
    latents = [[0.0] * 4, [1.0] * 4, [-1.0] * 4]
    audio = wav(client.post("/api/sequence", json={"latents": latents}))
    assert audio.shape == (1, 3 * CLIP_SAMPLES)
    second = wav(client.post("/api/decode", json={"latent": latents[1]}))
    np.testing.assert_allclose(audio[:, CLIP_SAMPLES : 2 * CLIP_SAMPLES], second, atol=1e-4)


def test_random_is_seeded_and_scaled_by_temperature(client):
    first = client.post("/api/random", json={"count": 3, "seed": 7}).json()["latents"]
    again = client.post("/api/random", json={"count": 3, "seed": 7}).json()["latents"]
    cooler = client.post("/api/random", json={"count": 3, "seed": 7, "temperature": 0.5})
    assert first == again and np.array(first).shape == (3, 4)
    np.testing.assert_allclose(np.array(cooler.json()["latents"]), 0.5 * np.array(first))
    other = client.post("/api/random", json={"count": 3, "seed": 8}).json()["latents"]
    assert other != first


def test_encode_upload_gives_the_files_latent(client, clips, clip_checkpoint):
    path = clips / "sine_1.wav"
    with open(path, "rb") as handle:
        response = client.post("/api/encode", files={"file": ("any name.wav", handle)})
    assert response.status_code == 200, response.text
    encoded = response.json()
    expected = ExplorerSession(clip_checkpoint).encode_file(path)
    np.testing.assert_allclose(encoded["latent"], expected.numpy(), atol=1e-5)
    assert encoded["trajectory"] is None and encoded["seconds"] == pytest.approx(0.3)


def test_map_modes(client, clips):
    data = client.get("/api/map", params={"mode": "data"}).json()
    assert data["count"] == 6 and len(data["points"]) == 12
    assert sorted(data["labels"]) == sorted(path.name for path in clips.iterdir())
    assert all(-1.0 <= value <= 1.0 for value in data["points"]) and data["color"] is None
    model = client.get("/api/map", params={"mode": "model", "color": "loudness"}).json()
    assert model["count"] == 2000 and len(model["color"]) == 2000
    assert min(model["color"]) == 0.0 and max(model["color"]) == 1.0
    # The Model map is cached beside the checkpoint and comes back the same.
    assert client.get("/api/map", params={"mode": "model"}).json()["points"] == model["points"]
    synth = client.get("/api/map", params={"mode": "synth", "seed": 1}).json()
    other = client.get("/api/map", params={"mode": "synth", "seed": 2}).json()
    assert synth["count"] == 1000 and synth["points"] != other["points"]
    bad = client.get("/api/map", params={"mode": "model", "color": "sparkle"})
    assert bad.status_code == 400
    assert client.get("/api/map", params={"mode": "elsewhere"}).status_code == 422


def test_data_map_without_data_says_how_to_get_one(make_client):
    client = make_client(data_dir=None)
    response = client.get("/api/map", params={"mode": "data"})
    assert response.status_code == 400 and "--data" in response.json()["detail"]


def test_data_map_reads_an_index_file(make_client, clips, tmp_path):
    index = tmp_path / "index.txt"
    index.write_text("\n".join(str(clips / f"sine_{k}.wav") for k in range(3)) + "\n")
    client = make_client(data_dir=index)
    assert client.get("/api/map", params={"mode": "data"}).json()["count"] == 3


def test_snap_gives_the_nearest_points_latent(client, clips, clip_checkpoint):
    found = client.get("/api/map", params={"mode": "data"}).json()
    points = np.array(found["points"]).reshape(-1, 2)
    x, y = points[2] + 0.001
    picked = client.post("/api/map/pick", json={"mode": "data", "x": x, "y": y}).json()
    assert picked["index"] == 2 and picked["neighbours"] == [2]
    assert picked["label"] == found["labels"][2]
    assert (picked["x"], picked["y"]) == pytest.approx(tuple(points[2]), abs=1e-4)
    # A data point is the clip's own encoding: decoding it plays the reconstruction.
    expected = ExplorerSession(clip_checkpoint).encode_file(clips / found["labels"][2])
    np.testing.assert_allclose(picked["latent"], expected.numpy(), atol=1e-5)


def test_blend_weights_the_k_nearest_points(client):
    found = client.get("/api/map", params={"mode": "model"}).json()
    body = {"mode": "model", "x": 0.05, "y": -0.05, "snap": False, "k": 3}
    blended = client.post("/api/map/pick", json=body).json()
    assert blended["index"] is None and len(blended["neighbours"]) == 3
    assert sum(blended["weights"]) == pytest.approx(1.0)
    points = np.array(found["points"]).reshape(-1, 2)
    distances = np.hypot(*(points - [0.05, -0.05]).T)
    assert set(blended["neighbours"]) == set(np.argsort(distances)[:3].tolist())
    assert (blended["x"], blended["y"]) == (0.05, -0.05)


def test_locate_puts_a_map_latent_on_its_point(client):
    found = client.get("/api/map", params={"mode": "data"}).json()
    points = np.array(found["points"]).reshape(-1, 2)
    picked = client.post("/api/map/pick", json={"mode": "data", "x": 0.0, "y": 0.0}).json()
    located = client.post(
        "/api/map/locate", json={"mode": "data", "latents": [picked["latent"]]}
    ).json()
    assert located["positions"][0] == pytest.approx(points[picked["index"]].tolist(), abs=1e-3)


def test_morph_walk_and_variations_match_the_library(client):
    a, b = [1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]
    for mode in ("linear", "slerp"):
        body = {"a": a, "b": b, "steps": 5, "mode": mode}
        path = client.post("/api/morph", json=body).json()["latents"]
        expected = morph_path(torch.tensor(a), torch.tensor(b), 5, mode)
        np.testing.assert_allclose(path, expected.numpy(), atol=1e-6)
    assert client.post("/api/morph", json={"a": a, "b": b, "steps": 1}).status_code == 422

    body = {"start": a, "steps": 6, "step_size": 0.5, "seed": 3}
    walk = client.post("/api/walk", json=body).json()["latents"]
    expected = random_walk(torch.tensor(a), 6, step_size=0.5, seed=3)
    np.testing.assert_allclose(walk, expected.numpy(), atol=1e-6)

    body = {"center": b, "count": 5, "sigma": 0.2, "seed": 4}
    found = client.post("/api/variations", json=body).json()["latents"]
    np.testing.assert_allclose(found, variations(torch.tensor(b), 5, 0.2, 4).numpy(), atol=1e-6)
    assert client.post("/api/variations", json={**body, "count": 500}).status_code == 422


def test_attribute_directions_and_moves(client):
    found = client.get("/api/attributes").json()
    assert found["names"] == ["brightness", "noisiness", "loudness"]
    for name in found["names"]:
        norm = np.linalg.norm(found["directions"][name])
        assert norm == pytest.approx(1.0, abs=1e-5) or (norm == 0 and name in found["flat"])
    latent = [0.1, 0.2, 0.3, 0.4]
    body = {"latent": latent, "amounts": {"brightness": 1.5, "loudness": -0.5}}
    moved = client.post("/api/attributes/move", json=body).json()["latent"]
    expected = (
        np.array(latent)
        + 1.5 * np.array(found["directions"]["brightness"])
        - 0.5 * np.array(found["directions"]["loudness"])
    )
    np.testing.assert_allclose(moved, expected, atol=1e-5)
    bad = {"latent": latent, "amounts": {"sparkle": 1.0}}
    assert client.post("/api/attributes/move", json=bad).status_code == 422


def test_presets_save_list_load_rename_delete(client, tmp_path):
    latent = [0.25, -0.5, 1.0, 2.0]
    saved = client.post("/api/presets", json={"name": "kick 1", "latent": latent, "meta": {"a": 1}})
    assert saved.status_code == 200
    listed = client.get("/api/presets").json()
    assert [preset["name"] for preset in listed["presets"]] == ["kick 1"]
    assert listed["presets"][0]["meta"]["a"] == 1
    loaded = client.post("/api/presets/load", json={"name": "kick 1"}).json()
    assert loaded["latent"] == latent and loaded["meta"]["kind"] == "clip_vae"
    renamed = client.post("/api/presets/rename", json={"old": "kick 1", "new": "kick-2"})
    assert renamed.status_code == 200
    assert [p["name"] for p in client.get("/api/presets").json()["presets"]] == ["kick-2"]
    assert client.post("/api/presets/load", json={"name": "kick 1"}).status_code == 404
    assert client.post("/api/presets/delete", json={"name": "kick-2"}).status_code == 200
    assert client.get("/api/presets").json()["presets"] == []
    assert client.post("/api/presets/delete", json={"name": "kick-2"}).status_code == 404
    assert sorted(path.name for path in (tmp_path / "presets").iterdir()) == [".presets.lock"]


def test_preset_of_another_model_is_refused(client, tmp_path):
    PresetStore(tmp_path / "presets").save("wide", torch.zeros(8))
    response = client.post("/api/presets/load", json={"name": "wide"})
    assert response.status_code == 400 and "another model" in response.json()["detail"]


def test_presets_default_to_a_folder_beside_the_checkpoint(make_client, clip_checkpoint):
    client = make_client(preset_dir=None)
    assert client.get("/api/presets").json()["folder"] == str(
        clip_checkpoint.with_name("clip_presets")
    )


def test_unload_frees_the_model_and_the_next_sound_reloads_it(client):
    before = wav(client.post("/api/decode", json={"latent": [0.3] * 4}))
    assert client.post("/api/unload").json() == {"loaded": False}
    assert client.get("/api/info").json()["loaded"] is False
    after = wav(client.post("/api/decode", json={"latent": [0.3] * 4}))
    np.testing.assert_array_equal(before, after)
    assert client.get("/api/info").json()["loaded"] is True
    client.post("/api/unload")
    assert client.post("/api/load").json() == {"loaded": True}


def test_wave_vae_recon_trajectory_and_offsets(make_client, wave_checkpoint, clips):
    client = make_client(wave_checkpoint)
    info = client.get("/api/info").json()
    assert info["kind"] == "wave_vae" and info["seconds_per_sound"] == pytest.approx(1.0, 0.01)
    with open(clips / "sine_0.wav", "rb") as handle:
        encoded = client.post("/api/encode", files={"file": ("a.wav", handle)}).json()
    trajectory = torch.tensor(encoded["trajectory"])
    assert trajectory.shape[0] == 4 and trajectory.shape[1] >= 2
    np.testing.assert_allclose(encoded["latent"], trajectory.mean(1).numpy(), atol=1e-5)
    session = ExplorerSession(wave_checkpoint)
    # The point unmoved: decoding the base trajectory is the file's reconstruction.
    body = {"latent": encoded["latent"], "base": encoded["trajectory"]}
    recon = wav(client.post("/api/decode", json=body))
    np.testing.assert_allclose(recon, session.decode(trajectory), atol=1.5 / 32768)
    # Moved: every frame moves by the same offset.
    moved = (torch.tensor(encoded["latent"]) + torch.tensor([0.5, 0, 0, 0])).tolist()
    offset_audio = wav(client.post("/api/decode", json={**body, "latent": moved}))
    expected = session.decode(session.offset_trajectory(trajectory, torch.tensor([0.5, 0, 0, 0])))
    np.testing.assert_allclose(offset_audio, expected, atol=1.5 / 32768)
    # A vector alone is held for one second.
    assert wav(client.post("/api/decode", json={"latent": moved})).shape[1] >= SAMPLE_RATE
    # Snapping to a data point of a wave VAE gives its trajectory (the reconstruction).
    picked = client.post("/api/map/pick", json={"mode": "data", "x": 0, "y": 0}).json()
    assert np.array(picked["trajectory"]).shape[0] == 4
