"""Streaming transformation: each equals its offline counterpart worked out by hand; files."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers import REPO, snapshot

from helius.config import load_config
from helius.errors import ConfigError
from helius.generate.stream import LatentTransform, StreamProcessor, stream_blocks, stream_file
from helius.models import build_model
from helius.models.checkpoint import load_prior, load_vae


@pytest.fixture(scope="module")
def vae(trained_pair):
    return load_vae(trained_pair / "checkpoints" / "last.pt")[0]


@pytest.fixture(scope="module")
def prior(trained_pair):
    return load_prior(trained_pair / "checkpoints" / "prior_final.pt")[0]


@pytest.fixture(scope="module")
def signal(trained_pair) -> np.ndarray:
    audio, _ = sf.read(str(sorted((trained_pair / "audio").glob("*.wav"))[0]), dtype="float32")
    return audio[None, :20000]


def offline_aligned(vae, audio: np.ndarray, edit_latents=lambda mu: mu) -> np.ndarray:
    """Offline reconstruction of the input followed by silence, shifted by the model's delay;
    `edit_latents` maps the encoder's means (1, D, frames) to the latents that are decoded."""
    delay, hop = vae.output_delay_samples, vae.hop_samples
    total = -(-(audio.shape[1] + delay) // hop) * hop
    padded = np.pad(audio, ((0, 0), (0, total - audio.shape[1])))
    with torch.no_grad():
        mu, _ = vae.encode(torch.from_numpy(padded)[None])
        rebuilt = vae.decode(edit_latents(mu))[0].numpy()
    return rebuilt[:, delay : delay + audio.shape[1]]


def prior_guesses(prior, latents: torch.Tensor) -> torch.Tensor:
    """The prior's temperature-0 guess of every frame of latents (1, D, T) from the frames
    before it, computed over the whole sequence at once; frame 0 (nothing heard yet) is kept."""
    with torch.no_grad():
        frames = prior.standardise(latents)
        logits, _ = prior(frames)
        # Temperature 0 takes the most likely bin's centre: the quantile (bin + 0.5) / bins.
        centres = (logits[:, :-1].argmax(-1).double() + 0.5) / prior.bins
        guessed = (math.sqrt(2.0) * torch.erfinv(2 * centres - 1)).float()
        return prior.restore(torch.cat([frames[:, :1], guessed], dim=1))


def run(vae, audio, block_size, transform=None, prior=None) -> np.ndarray:
    processor = StreamProcessor(vae, transform, prior)
    out = np.concatenate(list(stream_blocks(processor, [audio], block_size)), axis=1)
    vae.streaming(False)
    return out


@pytest.mark.parametrize("block_size", [64, 128, 333, 2048])
def test_identity_stream_equals_offline_reconstruction(vae, signal, block_size):
    out = run(vae, signal, block_size)
    assert out.shape == signal.shape
    assert np.abs(out - offline_aligned(vae, signal)).max() < 1e-5


def test_stream_with_the_noise_branch_equals_offline_under_the_same_seed(signal):
    config = load_config(REPO / "configs" / "tiny.yaml", ["model.wave.noise_branch=true"])
    torch.manual_seed(0)
    noisy = build_model(config.model, 16000).eval()
    out = run(noisy, signal, 333)  # the processor seeds the global generator with its seed, 0
    torch.manual_seed(0)
    offline = offline_aligned(noisy, signal)
    torch.manual_seed(1)
    other_noise = offline_aligned(noisy, signal)
    assert np.abs(offline - other_noise).max() > 1e-3  # the noise is audible in the output
    # 2e-5: this untrained model plays near full scale (peaks ~0.7, about 10x the trained
    # fixture's), and the streaming matrix products round differently from offline convs.
    assert np.abs(out - offline).max() < 2e-5


def test_latency_is_one_frame_plus_the_model_delay(vae):
    processor = StreamProcessor(vae)
    assert processor.latency_samples == vae.hop_samples + vae.output_delay_samples
    first = processor.process(np.ones((1, vae.hop_samples - 1), np.float32))
    assert not first.any()  # nothing can come out before a whole frame was heard
    vae.streaming(False)


SCALE = [2.0, 0.5, -1.0, 1.5]  # one per latent dimension of the tiny model
BIAS = [0.5, -0.25, 0.0, 1.0]


def test_scale_and_bias_map_each_latent_frame_affinely(vae, signal):
    """Streamed with z -> z * scale + bias equals the offline decode of the encoder's latents
    put through that map by hand."""
    out = run(vae, signal, 512, LatentTransform(scale=SCALE, bias=BIAS))
    scale, bias = (torch.tensor(values)[None, :, None] for values in (SCALE, BIAS))
    expected = offline_aligned(vae, signal, lambda mu: mu * scale + bias)
    identity = offline_aligned(vae, signal)
    assert np.abs(expected - identity).max() > 0.01  # the map changes the sound audibly
    assert np.abs(out - expected).max() < 1e-4


def test_noise_changes_the_output_and_repeats_under_a_seed(vae, signal):
    identity = offline_aligned(vae, signal)
    noisy = [run(vae, signal, 512, LatentTransform(noise=0.5, seed=s)) for s in (1, 1, 2)]
    assert not np.allclose(noisy[0], identity, atol=1e-3)
    assert np.array_equal(noisy[0], noisy[1]) and not np.allclose(noisy[0], noisy[2])


@pytest.mark.parametrize("mix", [0.5, 1.0])
def test_prior_mix_blends_the_input_latent_with_the_priors_guess(vae, signal, prior, mix):
    """z <- (1 - A) z + A z_prior, z_prior the prior's guess from the input's past frames."""
    transform = LatentTransform(prior_mix=mix, temperature=0.0)
    out = run(vae, signal, 512, transform, prior)
    expected = offline_aligned(
        vae, signal, lambda mu: (1 - mix) * mu + mix * prior_guesses(prior, mu)
    )
    assert np.abs(expected - offline_aligned(vae, signal)).max() > 0.01
    assert np.abs(out - expected).max() < 1e-4


def test_prior_mix_at_a_temperature_repeats_under_a_seed(vae, signal, prior):
    mixed = [
        run(vae, signal, 512, LatentTransform(prior_mix=0.5, seed=s), prior) for s in (3, 3, 4)
    ]
    assert np.array_equal(mixed[0], mixed[1]) and not np.allclose(mixed[0], mixed[2])


def test_bad_transforms_and_models_are_refused(vae, trained_pair):
    with pytest.raises(ConfigError, match="one value or 4"):
        StreamProcessor(vae, LatentTransform(scale=[1.0, 2.0]))
    with pytest.raises(ConfigError, match="needs a prior"):
        StreamProcessor(vae, LatentTransform(prior_mix=0.5))
    config = load_config(REPO / "configs" / "tiny.yaml", ["model.wave.causal=false"])
    with pytest.raises(ConfigError, match="causal"):
        StreamProcessor(build_model(config.model, 16000))


def test_stream_file_and_the_seed_script(trained_pair, tmp_path, signal, vae):
    source = tmp_path / "in" / "input.wav"
    source.parent.mkdir()
    sf.write(str(source), signal[0], 16000, subtype="FLOAT")
    before = snapshot(source.parent)
    checkpoints = trained_pair / "checkpoints"
    result = stream_file(checkpoints / "last.pt", source, tmp_path / "out.wav", block_size=256)
    written, _ = sf.read(str(tmp_path / "out.wav"), dtype="float32", always_2d=True)
    assert written.shape[0] == signal.shape[1]
    assert np.abs(written.T - offline_aligned(vae, signal)).max() < 1e-4  # 16-bit file
    # The whole file-to-file path includes the model's time, so it cannot be faster.
    assert 0 < result.total_realtime_factor <= result.realtime_factor
    assert result.realtime_factor > 0 and result.latency_ms == pytest.approx(
        1000 * (256 + vae.hop_samples + vae.output_delay_samples) / 16000
    )
    completed = subprocess.run(
        [
            sys.executable,
            str(REPO / "inference_streaming.py"),
            "--config",
            str(REPO / "configs" / "tiny.yaml"),
            "--vae_ckpt",
            str(checkpoints / "vae_epoch2.pt"),
            "--prior_ckpt",
            str(checkpoints / "prior_final.pt"),
            "--input_wav",
            str(source),
            "--output_wav",
            str(tmp_path / "generated" / "streaming_out.wav"),
            "--prior_mix",
            "0.3",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "x real time on 1 thread(s)" in completed.stdout
    assert "x counting reading, resampling and writing), latency" in completed.stdout
    assert sf.info(str(tmp_path / "generated" / "streaming_out.wav")).frames == signal.shape[1]
    assert snapshot(source.parent) == before
