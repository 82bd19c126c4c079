"""Streaming with int8 linear weights (`--precision int8`): it streams like its own int8 model
offline (up to activation rounding), stays close to the float32 model, and refuses what it
cannot help."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers import REPO

from helius.config import load_config
from helius.errors import ConfigError
from helius.generate import export
from helius.generate.stream import StreamProcessor, stream_blocks
from helius.models import build_model
from helius.models.checkpoint import save_checkpoint
from helius.nn.quantize import Int8CachedConv1d, int8_copy, quantized_layers
from helius.nn.streaming import CachedConv1d

SAMPLE_RATE = 16000
STFT = [
    "model.wave.transform=stft",
    "model.latent_dim=4",
    "model.wave.stft.n_fft=256",
    "model.wave.stft.hop=64",
    "model.wave.stft.frames_per_latent=2",
    "model.wave.stft.width=32",
    "model.wave.stft.encoder_blocks=1",
    "model.wave.stft.decoder_blocks=2",
    "model.wave.noise_branch=false",
]


@pytest.fixture(scope="module")
def config():
    return load_config(REPO / "configs" / "tiny.yaml", STFT)


@pytest.fixture(scope="module")
def vae(config):
    torch.manual_seed(0)
    return build_model(config.model, SAMPLE_RATE).eval()


@pytest.fixture(scope="module")
def signal() -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(6000) / SAMPLE_RATE
    tone = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))
    return (tone + 0.02 * rng.standard_normal(t.size)).astype(np.float32)[None]


def stream(model, audio, block_size, precision="float32") -> np.ndarray:
    processor = StreamProcessor(model, precision=precision)
    out = np.concatenate(list(stream_blocks(processor, [audio], block_size)), axis=1)
    model.streaming(False)
    return out


def offline(model, audio: np.ndarray) -> np.ndarray:
    """The whole signal reconstructed at once, shifted by the model's delay (as streamed); any
    noise is drawn under seed 0, as a stream's is."""
    delay, hop = model.output_delay_samples, model.hop_samples
    total = -(-(audio.shape[1] + delay) // hop) * hop
    padded = np.pad(audio, ((0, 0), (0, total - audio.shape[1])))
    torch.manual_seed(0)
    with torch.no_grad():
        rebuilt = model.decode(model.encode(torch.from_numpy(padded)[None])[0])[0].numpy()
    return rebuilt[:, delay : delay + audio.shape[1]]


def test_linear_and_ungrouped_conv_layers_are_quantized_and_the_original_is_untouched(vae):
    linears = sum(isinstance(module, torch.nn.Linear) for module in vae.modules())
    assert linears == 2 * 3 + 1  # two per ConvNeXt block (1 + 2 blocks) and the output head
    convs = [m for m in vae.modules() if isinstance(m, CachedConv1d) and m.groups == 1]
    assert len(convs) == 5  # encoder input, down, mu, logvar; decoder input
    before = {name: value.clone() for name, value in vae.state_dict().items()}
    quantized = int8_copy(vae)
    int8_convs = [m for m in quantized.modules() if isinstance(m, Int8CachedConv1d)]
    assert len(int8_convs) == len(convs)
    assert quantized_layers(quantized) == linears + len(convs)
    assert quantized_layers(vae) == 0
    assert all(torch.equal(before[name], value) for name, value in vae.state_dict().items())


def relative_db(got: np.ndarray, expected: np.ndarray) -> float:
    return float(20 * np.log10(np.linalg.norm(got - expected) / np.linalg.norm(expected)))


@pytest.mark.parametrize("block_size", [100, 256])
def test_int8_streams_like_its_own_model_offline(vae, signal, block_size):
    """Not to the last bit: dynamic quantization scales the activations of each call by their
    own range, so a one-frame call and the whole signal round differently."""
    streamed = stream(vae, signal, block_size, "int8")
    assert relative_db(streamed, offline(int8_copy(vae), signal)) < -40.0


def test_int8_output_is_close_to_float32_but_not_the_same(vae, signal):
    float32 = stream(vae, signal, 256)
    int8 = stream(vae, signal, 256, "int8")
    assert -60.0 < relative_db(int8, float32) < -25.0  # int8 weights change it, a little


def test_an_int8_copy_that_strays_is_refused(config, vae, monkeypatch):
    def broken_copy(model):
        torch.manual_seed(1)  # a copy that went wrong: other weights altogether
        return int8_copy(build_model(config.model, SAMPLE_RATE).eval())

    monkeypatch.setattr(export, "int8_copy", broken_copy)
    with pytest.raises(ConfigError, match="--precision float32"):
        StreamProcessor(vae, precision="int8")


def test_an_int8_conv_is_the_float_conv_up_to_rounding():
    torch.manual_seed(0)
    conv = CachedConv1d(8, 16, 3, stride=2, dilation=1, causal=True).eval()
    x = torch.randn(2, 8, 40)
    with torch.no_grad():
        expected, got = conv(x), Int8CachedConv1d(conv)(x)
    assert got.shape == expected.shape == (2, 16, 20)
    assert relative_db(got.numpy(), expected.numpy()) < -30.0


def test_the_pqmf_design_is_refused():
    pqmf = build_model(load_config(REPO / "configs" / "tiny.yaml").model, SAMPLE_RATE).eval()
    with pytest.raises(ConfigError, match="model.wave.transform: stft"):
        StreamProcessor(pqmf, precision="int8")


def test_models_with_nothing_to_quantize_and_unknown_precisions_are_refused(vae):
    with pytest.raises(ConfigError, match="Sequential has neither"):
        int8_copy(torch.nn.Sequential(torch.nn.ReLU()))
    with pytest.raises(ConfigError, match="float32, int8"):
        StreamProcessor(vae, precision="float16")


def test_helius_stream_with_int8(config, vae, signal, tmp_path):
    checkpoint = tmp_path / "stft.pt"
    payload = {"config": config.model_dump(mode="json"), "model": vae.state_dict(), "ema": None}
    save_checkpoint(checkpoint, {"kind": "vae", **payload})
    source = tmp_path / "in.wav"
    sf.write(str(source), signal[0], SAMPLE_RATE, subtype="FLOAT")
    command = [sys.executable, "-m", "helius", "stream", "--vae_ckpt", str(checkpoint)]
    command += ["--input_wav", str(source), "--output_wav", str(tmp_path / "out.wav")]
    completed = subprocess.run(
        [*command, "--precision", "int8", "--block_size", "256", "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    written, _ = sf.read(str(tmp_path / "out.wav"), dtype="float32", always_2d=True)
    assert relative_db(written.T, offline(int8_copy(vae), signal)) < -40.0
    refused = subprocess.run(
        [*command, "--precision", "fp16"], capture_output=True, text=True, check=False
    )
    assert refused.returncode == 2 and "invalid choice: 'fp16'" in refused.stderr
