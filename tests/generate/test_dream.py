"""Dream mode: exact lengths, seeds, prompts, the seed's script, and bad input."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers import REPO

from helius.cli import main
from helius.errors import ConfigError
from helius.generate.dream import (
    DREAM_CHUNK_FRAMES,
    dream_audio,
    dream_latents,
    dream_to_file,
    encode_prompt,
)
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


def prompt_of(trained_pair, kind: str) -> np.ndarray:
    """The first 4000 samples (31 whole frames) of one of the generated textures."""
    [path] = (trained_pair / "audio").glob(f"{kind}_*.wav")
    return sf.read(str(path), dtype="float32")[0][None, :4000]


def test_the_continuation_depends_on_the_prompt(pair, trained_pair):
    """Two prompts give two continuations; a prompt and a seed give one.

    The fixture's prior has trained 20 steps and is nearly uniform (its likeliest bin holds
    ~2 % against 1/64), so at temperature 1 the same random draws pick the same bins whatever
    it heard; at 0.1 its preferences decide (measured: 10 of 62 frames differ; none at 1)."""
    vae, prior = pair
    prompted, temperature = 31 * vae.hop_samples, 0.1
    pluck, fm = prompt_of(trained_pair, "pluck"), prompt_of(trained_pair, "fm")
    continued = [
        dream(pair, 0.5, seed=5, temperature=temperature, prompt=prompt)[:, prompted:]
        for prompt in (pluck, pluck, fm)
    ]
    assert continued[0].shape[1] == 8000
    assert np.array_equal(continued[0], continued[1])  # same prompt, same seed
    assert not np.allclose(continued[0], continued[2], atol=1e-3)  # another prompt

    # It is the prior that listens, not only the decoder's state: the latents differ too.
    def latents(prompt: np.ndarray) -> torch.Tensor:
        generator = torch.Generator().manual_seed(5)
        chunks = dream_latents(prior, 62, temperature, encode_prompt(vae, prompt), generator)
        return torch.cat(list(chunks), dim=-1)

    assert torch.equal(latents(pluck), latents(pluck))
    assert not torch.allclose(latents(pluck), latents(fm), atol=1e-3)


def test_at_temperature_zero_the_first_new_frame_is_the_priors_best_guess(pair, trained_pair):
    """The prior hears the whole encoded prompt; its most likely bin of each dimension, at
    the bin's centre quantile, is the first frame of the continuation."""
    vae, prior = pair
    guesses = []
    for kind in ("pluck", "fm"):
        prompt = encode_prompt(vae, prompt_of(trained_pair, kind))
        with torch.no_grad():
            logits, _ = prior(prior.standardise(prompt))
        centres = (logits[0, -1].argmax(-1).double() + 0.5) / prior.bins
        guess = (math.sqrt(2.0) * torch.erfinv(2 * centres - 1)).float()
        guesses.append(guess * prior.latent_std + prior.latent_mean)
        first = next(dream_latents(prior, 1, 0.0, prompt))[0, :, 0]
        torch.testing.assert_close(first, guesses[-1])
    assert not torch.allclose(guesses[0], guesses[1], atol=1e-3)  # the prompts lead apart


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
    # --config is checked against the checkpoint: the pair was trained without the noise branch
    assert "model.wave.noise_branch True vs False" in completed.stderr
    assert "the checkpoint's own config is used" in completed.stderr


def test_a_config_that_matches_the_checkpoint_draws_no_note(trained_pair, tmp_path, capsys):
    from helius.cli.common import check_config_matches

    same = tmp_path / "same.yaml"
    same.write_text(
        (REPO / "configs" / "tiny.yaml")
        .read_text()
        .replace("    causal: true", "    causal: true\n    noise_branch: false")
    )
    check_config_matches(same, trained_pair / "checkpoints" / "last.pt")
    assert capsys.readouterr().err == ""


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
