"""Streaming transformation: identity equals offline reconstruction, transformations, files."""

from __future__ import annotations

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
def signal(trained_pair) -> np.ndarray:
    audio, _ = sf.read(str(sorted((trained_pair / "audio").glob("*.wav"))[0]), dtype="float32")
    return audio[None, :20000]


def offline_aligned(vae, audio: np.ndarray) -> np.ndarray:
    """Offline reconstruction of the input followed by silence, shifted by the model's delay."""
    delay, hop = vae.output_delay_samples, vae.hop_samples
    total = -(-(audio.shape[1] + delay) // hop) * hop
    padded = np.pad(audio, ((0, 0), (0, total - audio.shape[1])))
    with torch.no_grad():
        mu, _ = vae.encode(torch.from_numpy(padded)[None])
        rebuilt = vae.decode(mu)[0].numpy()
    return rebuilt[:, delay : delay + audio.shape[1]]


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


def test_latency_is_one_frame_plus_the_model_delay(vae):
    processor = StreamProcessor(vae)
    assert processor.latency_samples == vae.hop_samples + vae.output_delay_samples
    first = processor.process(np.ones((1, vae.hop_samples - 1), np.float32))
    assert not first.any()  # nothing can come out before a whole frame was heard
    vae.streaming(False)


def test_bias_scale_and_noise_change_the_output_and_repeat_under_a_seed(vae, signal):
    identity = run(vae, signal, 512)
    biased = run(vae, signal, 512, LatentTransform(bias=[1.0, 0.0, -1.0, 0.5]))
    assert not np.allclose(biased, identity, atol=1e-3)
    noisy = [run(vae, signal, 512, LatentTransform(noise=0.5, seed=s)) for s in (1, 1, 2)]
    assert np.array_equal(noisy[0], noisy[1]) and not np.allclose(noisy[0], noisy[2])
    assert np.allclose(run(vae, signal, 512, LatentTransform(scale=1.0, bias=0.0)), identity)


def test_prior_mix_blends_between_the_input_and_the_prior(vae, signal, trained_pair):
    prior, _ = load_prior(trained_pair / "checkpoints" / "prior_final.pt")
    identity = run(vae, signal, 512)
    assert np.allclose(run(vae, signal, 512, LatentTransform(prior_mix=0.0), prior), identity)
    half = run(vae, signal, 512, LatentTransform(prior_mix=0.5, seed=0), prior)
    full = run(vae, signal, 512, LatentTransform(prior_mix=1.0, seed=0), prior)
    distance = lambda a: np.abs(a - identity).mean()  # noqa: E731
    assert 0 < distance(half) < distance(full)


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
