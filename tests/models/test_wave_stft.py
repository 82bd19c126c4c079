"""The wave VAE's spectral design (model.wave.transform: stft): its STFT layers against numpy,
streaming against offline, the scripted twin against the Python model, and a short training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helius.config import ConfigError, load_config
from helius.generate.export import streaming_engine
from helius.models import build_model
from helius.nn.spectral import IstftSynthesis, StftAnalysis

REPO_CONFIG = "configs/config.yaml"
N_FFT, HOP = 64, 16


def _hann(n: int) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)  # periodic, as torch's default


def _signal(seed: int, channels: int, samples: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((1, channels, samples)).astype(np.float32) * 0.1


def _tiny_stft(channels: int = 1, phase: str = "absolute", **sizes: int):
    # 3 frames per latent: chunks of whole latents are not whole turns of the phase advance
    overrides = {"n_fft": N_FFT, "hop": HOP, "frames_per_latent": 3, "width": 16}
    overrides.update(sizes, phase=phase)
    config = load_config(
        REPO_CONFIG,
        [
            "model.wave.transform=stft",
            "model.latent_dim=4",
            *(f"model.wave.stft.{key}={value}" for key, value in overrides.items()),
            "model.wave.stft.encoder_blocks=1",
            "model.wave.stft.decoder_blocks=2",
        ],
    )
    torch.manual_seed(0)
    return build_model(config.model, 16000, channels).eval()


def test_analysis_frames_are_causal_log_magnitudes():
    """Frame j is |rfft(hann * x[(j+1) hop - n_fft : (j+1) hop])| with zeros before the start."""
    x = _signal(0, 1, HOP * 10)
    got = StftAnalysis(N_FFT, HOP)(torch.from_numpy(x))[0].numpy()  # (bins, frames)
    padded = np.concatenate([np.zeros(N_FFT - HOP, np.float32), x[0, 0]])
    for j in range(10):
        frame = padded[j * HOP : j * HOP + N_FFT] * _hann(N_FFT)
        expected = np.log(np.abs(np.fft.rfft(frame)) + 1e-4)
        np.testing.assert_allclose(got[:, j], expected, atol=1e-4)


def test_synthesis_of_a_true_spectrum_gives_the_input_back_delayed():
    """Log-magnitudes and phases of x's own frames (numpy, pulse-centred convention) come back
    as x delayed by n_fft - hop, once every output sample has all its overlapping frames."""
    frames = 24
    x = _signal(1, 1, HOP * frames)[0, 0]
    padded = np.concatenate([np.zeros(N_FFT - HOP, np.float32), x])
    rows = []
    for j in range(frames):
        segment = padded[j * HOP : j * HOP + N_FFT] * _hann(N_FFT)
        # A circular shift by n_fft / 2 multiplies bin k by (-1)^k: synthesis undoes it.
        spectrum = np.fft.rfft(segment) * (-1.0) ** np.arange(N_FFT // 2 + 1)
        rows.append(np.concatenate([np.log(np.abs(spectrum) + 1e-30), np.angle(spectrum)]))
    parts = torch.tensor(np.stack(rows, axis=1)[None], dtype=torch.float32)
    synthesis = IstftSynthesis(N_FFT, HOP, channels=1, phase_advance=False)  # absolute phases
    out = synthesis(parts)[0, 0].numpy()
    delay = synthesis.delay_samples
    assert delay == N_FFT - HOP
    np.testing.assert_allclose(out[N_FFT:], x[N_FFT - delay : len(x) - delay], atol=1e-5)


@pytest.mark.parametrize("phase_advance", [True, False])
def test_a_held_phase_is_a_steady_tone_with_the_phase_advance(phase_advance):
    """One bin at a constant magnitude and a constant phase row: with the advance, a sinusoid
    at that bin's centre frequency (a least-squares fit explains all of it); without, the
    frames do not line up and much of the energy is not that sinusoid."""
    k, frames = 5, 40
    rows = np.full((2 * (N_FFT // 2 + 1), frames), -30.0, np.float32)
    rows[k] = 0.0
    rows[N_FFT // 2 + 1 :] = 0.3  # every phase held still
    synthesis = IstftSynthesis(N_FFT, HOP, channels=1, phase_advance=phase_advance)
    out = synthesis(torch.from_numpy(rows)[None])[0, 0].numpy()[N_FFT:]
    n = np.arange(N_FFT, N_FFT + len(out))
    basis = np.stack([np.cos(2 * np.pi * k * n / N_FFT), np.sin(2 * np.pi * k * n / N_FFT)], 1)
    fitted = basis @ np.linalg.lstsq(basis, out, rcond=None)[0]
    explained = 1 - np.sum((out - fitted) ** 2) / np.sum(out**2)
    assert (explained > 0.999) if phase_advance else (explained < 0.5)


def test_a_held_phase_increment_is_a_steady_tone_between_two_bins():
    """Integrated phases: one bin at a constant magnitude whose phase gains a constant d per
    frame beyond the bin's own rotation is a sinusoid at k + d n_fft / (2 pi hop) bins, not at
    the bin's centre: a held note between two bins is a constant decoder output."""
    k, frames, increment = 5, 60, 0.6
    bins = N_FFT // 2 + 1
    rows = np.full((2 * bins, frames), -30.0, np.float32)
    rows[k] = 0.0
    rows[bins:] = increment
    synthesis = IstftSynthesis(N_FFT, HOP, channels=1, integrate_phase=True)
    out = synthesis(torch.from_numpy(rows)[None])[0, 0].numpy()[N_FFT:]
    n = np.arange(N_FFT, N_FFT + len(out))

    def explained(cycles_per_frame: float) -> float:
        angle = 2 * np.pi * cycles_per_frame * n / N_FFT
        basis = np.stack([np.cos(angle), np.sin(angle)], 1)
        fitted = basis @ np.linalg.lstsq(basis, out, rcond=None)[0]
        return 1 - np.sum((out - fitted) ** 2) / np.sum(out**2)

    assert explained(k + increment * N_FFT / (2 * np.pi * HOP)) > 0.999
    assert explained(k) < 0.5


@pytest.mark.parametrize(
    ("channels", "phase"), [(1, "absolute"), (2, "absolute"), (2, "integrated")]
)
def test_streaming_chunks_equal_one_offline_call(channels, phase):
    model = _tiny_stft(channels, phase)
    hop = model.hop_samples
    assert hop == HOP * 3
    x = torch.from_numpy(_signal(2, channels, hop * 9))
    with torch.no_grad():
        mu, _ = model.encode(x)
        offline = model.decode(mu)
        model.streaming(True)
        chunks = [model.decode(model.encode(chunk)[0]) for chunk in x.split(hop * 3, dim=-1)]
        model.streaming(False)
    torch.testing.assert_close(torch.cat(chunks, dim=-1), offline, atol=1e-5, rtol=0)
    assert offline.shape == x.shape


@pytest.mark.parametrize("phase", ["absolute", "integrated"])
def test_scripted_engine_streams_what_the_python_model_computes(phase):
    """The twin `helius stream`, `live` and `export` run, one hop per call."""
    model = _tiny_stft(2, phase)
    engine = streaming_engine(model)
    x = torch.from_numpy(_signal(3, 2, model.hop_samples * 6))
    with torch.no_grad():
        offline = model.decode(model.encode(x)[0])
        streamed = torch.cat([engine.forward(c) for c in x.split(model.hop_samples, -1)], -1)
    torch.testing.assert_close(streamed, offline, atol=1e-5, rtol=0)
    assert engine.latency_samples == model.hop_samples + N_FFT - HOP


def test_the_untrained_default_model_is_audible():
    """Before any calibration every bin starts near magnitude 1 with Schroeder's phases and
    the frame's zero-phase point at its centre. (With the pulse at the frame's edge, where the
    Hann window is zero, the first version of this decoder started at -113 dBFS.)"""
    config = load_config(REPO_CONFIG, ["model.wave.transform=stft"])
    torch.manual_seed(0)
    model = build_model(config.model, 48000, 1).eval()
    x = torch.from_numpy(_signal(4, 1, 4 * model.hop_samples))
    with torch.no_grad():
        out = model.decode(model.encode(x)[0])[..., model.hop_samples :]
    level_db = 20 * torch.log10(out.pow(2).mean().sqrt()).item()
    assert -45.0 < level_db < -20.0


def test_hop_must_divide_n_fft():
    with pytest.raises(ConfigError, match="hop"):
        load_config(REPO_CONFIG, ["model.wave.transform=stft", "model.wave.stft.hop=500"])


def test_trains_and_reloads_from_its_checkpoint(tmp_path):
    """Through the trainer on tiny textures: the loss falls, and the checkpoint alone rebuilds
    the same model (the stft section travels in the checkpoint's config)."""
    from helpers import tiny_config, write

    from helius.audio.synth import make_texture
    from helius.data.prep import prepare
    from helius.data.segment import PrepSettings
    from helius.models.checkpoint import load_vae
    from helius.train.trainer import fit
    from helius.train.vae_task import VAETask

    for index, kind in enumerate(("pluck", "pad", "fm")):
        audio, _ = make_texture(kind, index, sample_rate=16000, duration_seconds=4.0)
        write(tmp_path / "audio" / f"{kind}.wav", audio[None], 16000)
    prepare(tmp_path / "audio", tmp_path / "data", PrepSettings(16000, 1.0), 0.2, workers=1)
    config = tiny_config(
        tmp_path,
        "model.wave.transform=stft",
        *(f"model.wave.stft.{k}={v}" for k, v in {"n_fft": 256, "hop": 64, "width": 32}.items()),
        "model.wave.stft.decoder_blocks=2",
        "model.wave.stft.encoder_blocks=1",
        "train.epochs=null",
        "train.max_steps=60",
        "train.learning_rate=0.003",
        "train.val_every_steps=1000",
    )
    torch.manual_seed(0)
    fitted = fit(config, VAETask(config))
    assert len(fitted.losses) == 60
    assert np.mean(fitted.losses[-10:]) < 0.8 * np.mean(fitted.losses[:10])
    model, loaded = load_vae(tmp_path / "checkpoints" / "last.pt")
    assert loaded.model.wave.transform == "stft" and model.hop_samples == 256
    x = torch.from_numpy(_signal(6, 1, 1024))
    with torch.no_grad():
        expected = fitted.model.eval().decode(fitted.model.encode(x)[0])
        torch.testing.assert_close(model.decode(model.encode(x)[0]), expected)


@pytest.mark.parametrize("amplitude", [0.3, 0.01])
def test_calibration_starts_the_decoder_at_the_datas_level(amplitude):
    """Loud (-12 dBFS) or quiet (-42 dBFS) training audio: after `calibrate` the untrained
    model's output has the audio's RMS level within 1.5 dB, unclipped."""
    config = load_config(REPO_CONFIG, [])
    torch.manual_seed(0)
    model = build_model(config.model, 48000, 1).eval()
    audio = torch.from_numpy(_signal(7, 1, 8 * model.hop_samples)).repeat(4, 1, 1)
    audio = audio * (amplitude / 0.1) * torch.linspace(0.2, 1.0, 4).view(4, 1, 1)
    model.calibrate(audio)
    with torch.no_grad():
        out = model.decode(model.encode(audio)[0])

    def level(x: torch.Tensor) -> float:
        return 20 * torch.log10(x.pow(2).mean().sqrt()).item()

    assert abs(level(out) - level(audio)) < 1.5
    assert out.abs().max().item() < 0.9 * 0.95  # well inside the tanh's headroom


def test_export_writes_a_file_that_streams_like_the_model(tmp_path):
    """`helius export` of a spectral checkpoint: the TorchScript file alone (torch.jit.load)
    streams what the Python model computes offline."""
    from helius.generate.export import export_model
    from helius.models.checkpoint import save_checkpoint

    model = _tiny_stft(1, frames_per_latent=4)  # a power-of-two hop (64), as nn~ needs
    config = load_config(
        REPO_CONFIG,
        [
            "data.sample_rate=16000",
            "model.latent_dim=4",
            *(f"model.wave.stft.{k}={v}" for k, v in {"n_fft": N_FFT, "hop": HOP}.items()),
            "model.wave.stft.frames_per_latent=4",
            "model.wave.stft.width=16",
            "model.wave.stft.encoder_blocks=1",
            "model.wave.stft.decoder_blocks=2",
        ],
    )
    payload = {"kind": "vae", "config": config.model_dump(mode="json")}
    checkpoint = save_checkpoint(tmp_path / "vae.pt", {**payload, "model": model.state_dict()})
    result = export_model(checkpoint, tmp_path / "model.ts")
    scripted = torch.jit.load(str(result.output))
    x = torch.from_numpy(_signal(8, 1, 64 * 5))
    with torch.no_grad():
        offline = model.decode(model.encode(x)[0])
        streamed = torch.cat([scripted.forward(chunk) for chunk in x.split(128, -1)], -1)
    torch.testing.assert_close(streamed, offline, atol=1e-5, rtol=0)
    assert result.hop_samples == 64 and result.latency_samples == 64 + N_FFT - HOP
