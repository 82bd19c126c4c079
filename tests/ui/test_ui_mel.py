"""The explorer on a mel VAE (HarmonicVAE) checkpoint: one vector per mel patch, its sounds
coming out through a vocoder of the same mel settings (or Griffin-Lim), and the refusals."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers import sine, write

from helius import registry
from helius.config import validate_config
from helius.errors import ConfigError
from helius.models.checkpoint import CheckpointError, load_model, save_checkpoint

RATE = 8000
PATCH = 4000  # segment_length 0.5 s
MEL = {"n_fft": 256, "hop_length": 64, "n_mels": 24}


def save(path: Path, model: dict, seed: int) -> Path:
    config = validate_config({"model": model, "data": {"sample_rate": RATE}})
    entry = registry.get(model["kind"])
    torch.manual_seed(seed)
    network = entry.build(config)
    payload = {"config": config.model_dump(mode="json"), "model": network.state_dict()}
    return save_checkpoint(path, {"kind": entry.checkpoint_kind, **payload, "ema": None})


@pytest.fixture(scope="module")
def mel_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("mel_explorer")
    vae = {"kind": "mel_vae", **MEL, "segment_length": 0.5, "architecture": "mlp"}
    vae |= {"hidden_dims": [32], "latent_dim": 6}
    vocoder = {"kind": "vocoder", **MEL, "width": 16, "blocks": 1}
    other = {"kind": "vocoder", **MEL, "n_mels": 32, "width": 16, "blocks": 1}
    clips = root / "clips"
    for index in range(4):
        write(clips / f"tone_{index}.wav", sine(0.5, RATE, 200.0 * (index + 1)), RATE)
    return {
        "vae": save(root / "harmonic_vae_best.pt", vae, 0),
        "vocoder": save(root / "vocoder.pt", vocoder, 1),
        "other_vocoder": save(root / "vocoder_32.pt", other, 2),
        "clips": clips,
    }


def wav(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    audio, rate = sf.read(io.BytesIO(response.content), dtype="float32", always_2d=True)
    assert rate == RATE
    return audio.T


def test_a_mel_checkpoint_is_explored_through_its_vocoder(make_client, mel_files):
    client = make_client(
        mel_files["vae"], vocoder=mel_files["vocoder"], data_dir=mel_files["clips"]
    )
    info = client.get("/api/info").json()
    assert info["kind"] == "mel_vae" and info["latent_dim"] == 6 and info["channels"] == 1
    assert info["seconds_per_sound"] == 0.5 and info["audio_out"] == "vocoder vocoder.pt"

    # A latent's sound is the VAE's mel through the vocoder, computed here without the app.
    vae, _ = load_model(mel_files["vae"], "mel_vae")
    vocoder, _ = load_model(mel_files["vocoder"], "vocoder")
    latent = [0.5, -1.0, 0.25, 2.0, 0.0, -0.5]
    with torch.no_grad():
        expected = vocoder(vae.decode(torch.tensor([latent])))[0].numpy()
    audio = wav(client.post("/api/decode", json={"latent": latent}))
    assert audio.shape == (1, PATCH)
    length = min(PATCH, expected.shape[-1])
    np.testing.assert_allclose(audio[0, :length], expected[0, :length], atol=2 / 32768)
    assert not audio[0, length:].any()  # the rest of the patch is silence

    # Encoding an upload is the posterior mean of its first patch's log-mel.
    clip = mel_files["clips"] / "tone_1.wav"
    with clip.open("rb") as handle:
        encoded = client.post("/api/encode", files={"file": ("x.wav", handle)}).json()["latent"]
    tone = torch.as_tensor(sf.read(clip, dtype="float32")[0])[None, None]
    with torch.no_grad():
        mu = vae.encode(vae.features(tone))[0][0]
    np.testing.assert_allclose(encoded, mu.numpy(), atol=1e-4)

    # The sound map of the data and a morph between two of its points.
    found = client.get("/api/map", params={"mode": "data"}).json()
    assert found["count"] == 4
    points = np.array(found["points"]).reshape(-1, 2)
    latents = []
    for index in (0, 3):  # snapping to a data point gives that clip's own encoding
        x, y = points[index] + 0.001
        picked = client.post("/api/map/pick", json={"mode": "data", "x": x, "y": y}).json()
        assert picked["index"] == index
        latents.append(picked["latent"])
    a, b = latents
    path = client.post("/api/morph", json={"a": a, "b": b, "steps": 3}).json()["latents"]
    np.testing.assert_allclose(path[0], a, atol=1e-5)
    np.testing.assert_allclose(path[-1], b, atol=1e-5)
    sequence = wav(client.post("/api/sequence", json={"latents": path}))
    assert sequence.shape == (1, 3 * PATCH)


def test_without_a_vocoder_griffin_lim_makes_the_sound(make_client, mel_files):
    client = make_client(mel_files["vae"], data_dir=mel_files["clips"])
    assert client.get("/api/info").json()["audio_out"] == "Griffin-Lim"
    audio = wav(client.post("/api/decode", json={"latent": [0.0] * 6}))
    assert audio.shape == (1, PATCH) and np.abs(audio).max() > 0


def test_a_vocoder_of_other_mel_settings_is_refused_by_name(make_client, mel_files):
    with pytest.raises(CheckpointError, match="vocoder_32.pt was trained on other mel settings"):
        make_client(mel_files["vae"], vocoder=mel_files["other_vocoder"])


def test_a_vocoder_with_a_wave_checkpoint_is_refused(make_client, wave_checkpoint, mel_files):
    with pytest.raises(ConfigError, match="--vocoder is for mel VAE checkpoints"):
        make_client(wave_checkpoint, vocoder=mel_files["vocoder"])


def test_explore_command_passes_the_vocoder_on(mel_files, wave_checkpoint, capsys):
    from helius.cli import main

    base = ["explore", "--port", "0", "--vocoder", str(mel_files["other_vocoder"])]
    assert main([*base, "--vae_ckpt", str(mel_files["vae"])]) == 1
    assert "trained on other mel settings (n_mels differ" in capsys.readouterr().err
    assert main([*base, "--vae_ckpt", str(wave_checkpoint)]) == 1
    assert "leave --vocoder out" in capsys.readouterr().err
