"""Dream mode: exact lengths, seeds, prompts, the seed's script, and bad input."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers import REPO

from helius.cli import main
from helius.errors import ConfigError
from helius.generate.dream import DREAM_CHUNK_FRAMES, dream_audio, dream_to_file
from helius.models.checkpoint import CheckpointError, load_prior, load_vae


@pytest.fixture(scope="module")
def pair(trained_pair):
    vae, _ = load_vae(trained_pair / "checkpoints" / "last.pt")
    prior, _ = load_prior(trained_pair / "checkpoints" / "prior_final.pt")
    return vae, prior


def dream(pair, seconds, seed=0, temperature=1.0, prompt=None) -> np.ndarray:
    vae, prior = pair
    return np.concatenate(list(dream_audio(vae, prior, seconds, temperature, seed, prompt)), 1)


def test_length_is_exact_and_blocks_are_small(pair):
    vae, prior = pair
    blocks = list(dream_audio(vae, prior, 1.23))
    assert sum(block.shape[1] for block in blocks) == round(1.23 * 16000)
    assert max(block.shape[1] for block in blocks) <= DREAM_CHUNK_FRAMES * vae.hop_samples
    assert all(np.isfinite(block).all() and np.abs(block).max() <= 0.9 for block in blocks)
    assert not vae.is_streaming  # switched back off afterwards


def test_a_seed_repeats_a_dream_and_another_seed_changes_it(pair):
    first, again, other = dream(pair, 0.5, seed=3), dream(pair, 0.5, seed=3), dream(pair, 0.5, 4)
    assert np.array_equal(first, again)
    assert not np.allclose(first, other)


def test_temperature_zero_is_deterministic_whatever_the_seed(pair):
    a, b = dream(pair, 0.5, seed=1, temperature=0.0), dream(pair, 0.5, seed=2, temperature=0.0)
    # Only the first frame (drawn with std = temperature = 0) and bins' centres: no randomness.
    assert np.allclose(a, b)


def test_prompt_is_decoded_then_continued(pair, trained_pair):
    vae, _ = pair
    prompt, _ = sf.read(str(next((trained_pair / "audio").glob("*.wav"))), dtype="float32")
    prompt = prompt[None, :4000]  # 31.25 frames: 31 whole frames are used
    out = dream(pair, 0.5, prompt=prompt)
    assert out.shape[1] == 31 * vae.hop_samples + 8000
    with torch.no_grad():
        mu, _ = vae.encode(torch.from_numpy(prompt[:, : 31 * 128])[None])
        reconstruction = vae.decode(mu)[0].numpy()
    assert np.allclose(out[:, : 31 * 128], reconstruction, atol=1e-5)


def test_dream_to_file_writes_atomically_and_reports(trained_pair, tmp_path):
    checkpoints = trained_pair / "checkpoints"
    output = tmp_path / "generated" / "generated.wav"
    result = dream_to_file(checkpoints / "last.pt", checkpoints / "prior_final.pt", output, 2.0)
    assert sf.info(str(output)).frames == 32000 and result.realtime_factor > 0
    assert [p.name for p in output.parent.iterdir()] == ["generated.wav"]


def test_seed_script_defaults_to_generated_generated_wav(trained_pair, tmp_path):
    checkpoints = trained_pair / "checkpoints"
    completed = subprocess.run(
        [
            sys.executable,
            str(REPO / "inference.py"),
            "--config",
            str(REPO / "configs" / "tiny.yaml"),
            "--vae_ckpt",
            str(checkpoints / "vae_epoch2.pt"),
            "--prior_ckpt",
            str(checkpoints / "prior_final.pt"),
            "--length_seconds",
            "1",
            "--quiet",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert sf.info(str(tmp_path / "generated" / "generated.wav")).frames == 16000
    assert "x real time" in completed.stdout


def test_bad_requests_fail_clearly(trained_pair, tmp_path, capsys):
    checkpoints = trained_pair / "checkpoints"
    vae, prior = checkpoints / "last.pt", checkpoints / "prior_final.pt"
    with pytest.raises(ConfigError, match="must be positive"):
        dream_to_file(vae, prior, tmp_path / "x.wav", 0)
    with pytest.raises(CheckpointError, match="holds a vae model, but a prior"):
        dream_to_file(vae, vae, tmp_path / "x.wav", 1)
    code = main(["dream", "--vae_ckpt", str(vae), "--prior_ckpt", str(prior), "--output", "x.mp4"])
    assert code == 1 and "use a .wav or .flac" in capsys.readouterr().err
    assert not (tmp_path / "x.wav").exists()
