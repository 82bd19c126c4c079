"""WaveVAE: shapes, exact chunked streaming, per-instance state, floors, bounds and gradients."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from helius.config import ModelConfig
from helius.errors import ConfigError
from helius.models import build_model
from helius.models.base import VAEOutput
from helius.models.wave_vae import WaveVAE

SAMPLE_RATE = 16000


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors gain nothing from threads, and on a busy machine every op of a chunked
    stream would wait for a descheduled worker thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_config(**wave: Any) -> ModelConfig:
    """bands 4 x ratios [2, 2]: 16 samples per latent frame, a few thousand parameters."""
    settings: dict[str, Any] = {
        "transform": "pqmf",
        "bands": 4,
        "ratios": [2, 2],
        "capacity": 8,
        "dilations": [1, 3],
        "causal": True,
    }
    settings.update(wave)
    return ModelConfig.model_validate({"latent_dim": 4, "wave": settings})


def tiny_model(channels: int = 1, seed: int = 0, **wave: Any) -> WaveVAE:
    torch.manual_seed(seed)
    return WaveVAE(tiny_config(**wave), sample_rate=SAMPLE_RATE, channels=channels).eval()


def audio(frames: int, hop: int = 16, channels: int = 1, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return 0.3 * torch.randn(2, channels, frames * hop, generator=generator)


def test_shapes_and_hop() -> None:
    model = tiny_model(channels=2)
    assert model.hop_samples == 16
    assert (model.sample_rate, model.latent_dim, model.channels) == (SAMPLE_RATE, 4, 2)
    x = audio(10, channels=2)
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (2, 4, 10)
    assert model.decode(mu).shape == x.shape
    out = model(x)
    assert isinstance(out, VAEOutput)
    assert out.audio.shape == x.shape and torch.equal(out.z, out.mu)  # eval: z = mu


def test_build_model_makes_a_wave_vae() -> None:
    model = build_model(tiny_config(), sample_rate=SAMPLE_RATE, channels=1)
    assert isinstance(model, WaveVAE)


def test_training_mode_samples_z() -> None:
    model = tiny_model().train()
    out = model(audio(4))
    assert not torch.equal(out.z, out.mu)


@pytest.mark.parametrize("frames_per_chunk", [1, 2, 4, 16])
def test_chunked_streaming_equals_offline(frames_per_chunk: int) -> None:
    # Everything but the noise branch (fresh noise per call cannot match offline noise).
    model = tiny_model(noise_branch=False)
    x = audio(2 * max(frames_per_chunk, 8))
    with torch.no_grad():
        mu_offline, logvar_offline = model.encode(x)
        audio_offline = model.decode(mu_offline)
        forward_offline = model(x).audio
        model.streaming(True)
        hop = model.hop_samples * frames_per_chunk
        pieces = [model.encode(x[..., i : i + hop]) for i in range(0, x.shape[-1], hop)]
        mu = torch.cat([mu for mu, _ in pieces], dim=-1)
        logvar = torch.cat([logvar for _, logvar in pieces], dim=-1)
        decoded = torch.cat(
            [
                model.decode(mu_offline[..., i : i + frames_per_chunk])
                for i in range(0, mu_offline.shape[-1], frames_per_chunk)
            ],
            dim=-1,
        )
        model.reset_streaming_state()
        forward = torch.cat(
            [model(x[..., i : i + hop]).audio for i in range(0, x.shape[-1], hop)], -1
        )
    assert (mu - mu_offline).abs().max() < 1e-5
    assert (logvar - logvar_offline).abs().max() < 1e-5
    assert (decoded - audio_offline).abs().max() < 1e-5
    assert (forward - forward_offline).abs().max() < 1e-5


@pytest.mark.parametrize("frames_per_chunk", [1, 3, 16])
def test_chunked_streaming_with_the_noise_branch_equals_offline_under_a_seed(
    frames_per_chunk: int,
) -> None:
    model = tiny_model()  # the noise branch is on by default
    latents = torch.randn(2, 4, 40, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.manual_seed(7)
        offline = model.decode(latents)
        torch.manual_seed(8)
        other_noise = model.decode(latents)
        model.streaming(True)
        torch.manual_seed(7)
        chunks = latents.split(frames_per_chunk, dim=-1)
        streamed = torch.cat([model.decode(chunk) for chunk in chunks], dim=-1)
    assert (offline - other_noise).abs().max() > 1e-3  # the noise reaches the output
    assert (streamed - offline).abs().max() < 1e-5


def test_streaming_is_per_instance_and_reset_repeats_a_pass() -> None:
    streaming = tiny_model(noise_branch=False).streaming(True)
    offline = tiny_model(noise_branch=False)
    assert streaming.is_streaming and not offline.is_streaming
    x = audio(8)
    with torch.no_grad():
        expected = offline(x).audio
        first = torch.cat([streaming(x[..., i : i + 32]).audio for i in range(0, 128, 32)], -1)
        carried = streaming(x[..., :32]).audio  # continues the stream: not a fresh start
        streaming.reset_streaming_state()
        again = torch.cat([streaming(x[..., i : i + 32]).audio for i in range(0, 128, 32)], -1)
        assert torch.allclose(offline(x).audio, expected)  # the other instance is unaffected
    assert (first - expected).abs().max() < 1e-5
    assert (again - first).abs().max() < 1e-6
    assert not torch.allclose(carried, first[..., :32])
    streaming.streaming(False)
    assert not streaming.is_streaming


def test_non_causal_model_cannot_stream() -> None:
    model = tiny_model(causal=False)
    with pytest.raises(ConfigError, match="model.wave.causal"):
        model.streaming(True)
    with pytest.raises(ConfigError):
        _ = model.latency_samples
    assert not model.can_stream and model.output_delay_samples == 0


def test_receptive_field_and_latency() -> None:
    model = tiny_model()
    field = model.receptive_field_samples()
    assert field.encode_samples > model.hop_samples
    assert field.decode_frames > 1
    assert field.decode_samples == field.decode_frames * model.hop_samples
    assert model.output_delay_samples == model.pqmf.taps - 4
    assert model.latency_samples == model.hop_samples + model.output_delay_samples
    assert all(parameter.grad is None for parameter in model.parameters())


def test_only_non_causal_models_look_ahead() -> None:
    causal = tiny_model().receptive_field_samples()
    centred = tiny_model(causal=False).receptive_field_samples()
    assert causal.encode_lookahead_samples == 0 and causal.decode_lookahead_frames == 0
    assert centred.encode_lookahead_samples > 0 and centred.decode_lookahead_frames > 0


def test_logvar_floor_and_output_headroom_hold_for_extreme_input() -> None:
    model = tiny_model(logvar_min=-3.0, headroom=0.5)
    with torch.no_grad():
        torch.nn.init.constant_(model.encoder.logvar.bias, -1e4)
        mu, logvar = model.encode(audio(4) * 1e4)
        assert logvar.min() >= -3.0
        loud = model.decode(torch.full((1, 4, 6), 1e3))
    assert loud.abs().max() <= 0.5
    assert torch.isfinite(mu).all()


@pytest.mark.parametrize("activation", ["snake", "leaky_relu", "elu"])
@pytest.mark.parametrize("flags", [(True, True), (False, False)])
def test_activation_and_branch_options_build_and_run(
    activation: str, flags: tuple[bool, bool]
) -> None:
    noise_branch, amplitude_modulation = flags
    model = tiny_model(
        activation=activation,
        noise_branch=noise_branch,
        amplitude_modulation=amplitude_modulation,
    )
    out = model(audio(3))
    assert out.audio.shape == (2, 1, 48) and torch.isfinite(out.audio).all()


def test_one_band_model() -> None:
    model = tiny_model(bands=1)
    assert model.hop_samples == 4
    assert model(audio(5, hop=4)).audio.shape == (2, 1, 20)


def test_length_not_a_multiple_of_hop_is_a_clear_error() -> None:
    model = tiny_model()
    with pytest.raises(ValueError, match="multiple of hop_samples"):
        model.encode(torch.zeros(1, 1, 40))
    with pytest.raises(ValueError, match="channels"):
        model.encode(torch.zeros(1, 2, 32))
    with pytest.raises(ValueError, match="latents"):
        model.decode(torch.zeros(1, 3, 2))


def test_noise_branch_is_reproducible_under_a_seed() -> None:
    model = tiny_model()
    torch.manual_seed(5)
    first = model(audio(4)).audio
    torch.manual_seed(5)
    assert torch.equal(model(audio(4)).audio, first)


def test_gradients_reach_every_parameter() -> None:
    model = tiny_model().train()
    x = audio(4)
    out = model(x)
    loss = (out.audio - x).abs().mean() + 1e-3 * out.mu.pow(2).mean()
    loss.backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None]
    assert not missing
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_default_config_builds_with_a_modest_parameter_count() -> None:
    model = WaveVAE(ModelConfig(), sample_rate=48000)
    parameters = sum(p.numel() for p in model.parameters())
    print(f"default WaveVAE parameters: {parameters:,}")
    assert model.hop_samples == 2048
    assert parameters < 20_000_000


def test_state_dict_round_trip_rebuilds_the_same_model() -> None:
    model = tiny_model(noise_branch=False)
    state = model.state_dict()
    assert not any(key.startswith("pqmf") for key in state)  # fixed filters come from config
    other = tiny_model(seed=1, noise_branch=False)
    other.load_state_dict(state)
    x = audio(4)
    with torch.no_grad():
        assert torch.equal(other(x).audio, model(x).audio)
