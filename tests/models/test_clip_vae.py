"""ClipVAE: shapes, headroom, the no-cheat eval path, the skip schedule, gradients and size."""

from __future__ import annotations

import math

import pytest
import torch

from helius.config import ClipModelConfig, LossConfig, ModelConfig
from helius.errors import ConfigError
from helius.losses import CLIP_FFT_SIZES, kl_loss, reconstruction_loss
from helius.models import build_model
from helius.models.clip_vae import ClipVAE

SAMPLE_RATE = 8000
CLIP_SECONDS = 0.25
CLIP_SAMPLES = 2000  # not a multiple of the total stride 16: the model pads and crops


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny models gain nothing from intra-op threads, and on a busy 2-core machine the
    # thread pool's synchronisation made a 2 ms forward take close to a second.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _config(**clip_overrides: object) -> ModelConfig:
    clip = {
        "clip_seconds": CLIP_SECONDS,
        "channels": [8, 16],
        "strides": [4, 4],
        "hidden": 32,
        **clip_overrides,
    }
    return ModelConfig(kind="clip_vae", latent_dim=8, clip=ClipModelConfig(**clip))


def _model(audio_channels: int = 1, **clip_overrides: object) -> ClipVAE:
    torch.manual_seed(0)
    return ClipVAE(_config(**clip_overrides), sample_rate=SAMPLE_RATE, channels=audio_channels)


def _clips(batch: int = 2, channels: int = 1, seed: int = 1) -> torch.Tensor:
    """Decaying sines with a little noise, a kick-like one-shot per item."""
    generator = torch.Generator().manual_seed(seed)
    t = torch.arange(CLIP_SAMPLES) / SAMPLE_RATE
    freqs = torch.linspace(80.0, 400.0, batch * channels).view(batch, channels, 1)
    tone = torch.sin(2 * math.pi * freqs * t) * torch.exp(-t / 0.05)
    return 0.5 * tone + 0.01 * torch.randn(batch, channels, CLIP_SAMPLES, generator=generator)


def test_shapes_and_properties() -> None:
    model = _model()
    out = model(_clips(), step=0)
    assert out.audio.shape == (2, 1, CLIP_SAMPLES)
    assert out.mu.shape == out.logvar.shape == out.z.shape == (2, 8)
    assert model.clip_samples == model.hop_samples == CLIP_SAMPLES
    assert (model.sample_rate, model.latent_dim, model.channels) == (SAMPLE_RATE, 8, 1)
    mu, logvar = model.encode(_clips())
    assert mu.shape == logvar.shape == (2, 8)
    assert model.decode(mu).shape == (2, 1, CLIP_SAMPLES)


def test_stereo_and_odd_strides_pad_and_crop() -> None:
    model = _model(audio_channels=2, strides=[3, 5])  # total stride 15: 2000 pads to 2010
    out = model(_clips(channels=2))
    assert out.audio.shape == (2, 2, CLIP_SAMPLES)


def test_build_model_makes_a_clip_vae() -> None:
    assert isinstance(build_model(_config(), sample_rate=SAMPLE_RATE), ClipVAE)


def test_wrong_input_and_inconsistent_config_are_rejected() -> None:
    model = _model()
    with pytest.raises(ValueError, match="clip_seconds"):
        model(torch.zeros(1, 1, CLIP_SAMPLES - 1))
    with pytest.raises(ValueError):
        model(torch.zeros(1, 2, CLIP_SAMPLES))
    with pytest.raises(ConfigError, match="model.clip.channels"):
        _model(strides=[4, 4, 4])


def test_output_peak_stays_within_headroom() -> None:
    model = _model(headroom=0.9)
    with torch.no_grad():
        model.decoder.output_conv.weight.mul_(1000.0)  # drive tanh deep into saturation
    audio = model(10 * _clips()).audio
    assert audio.abs().max().item() <= 0.9
    assert audio.abs().max().item() > 0.89


def test_eval_forward_decodes_from_the_mean_alone() -> None:
    model = _model().eval()
    x = _clips()
    out = model(x, step=0)  # even at step 0 (probability 0 in training) eval never cheats
    mu, _ = model.encode(x)
    assert torch.equal(out.z, mu)
    assert torch.equal(out.audio, model.decode(mu))


def test_training_uses_real_skips_at_probability_zero_and_generated_at_one() -> None:
    model = _model(generated_skip_prob_start=0.0, generated_skip_prob_end=1.0).train()
    x = _clips()
    real = model(x, step=0)
    assert not torch.allclose(real.audio, model.decode(real.z), atol=1e-4)
    generated = model(x, step=None)  # None -> the end probability, 1
    assert torch.equal(generated.audio, model.decode(generated.z))


def test_generated_skip_probability_schedule() -> None:
    model = _model(
        generated_skip_prob_start=0.2, generated_skip_prob_end=0.8, generated_skip_steps=100
    )
    expected = {0: 0.2, 25: 0.35, 50: 0.5, 100: 0.8, 1000: 0.8, None: 0.8}
    for step, probability in expected.items():
        assert model.generated_skip_probability(step) == pytest.approx(probability), step


def _skip_choices(model: ClipVAE, x: torch.Tensor, seed: int, batches: int) -> list[bool]:
    """For each training batch, whether the decoder was fed generated skips."""
    torch.manual_seed(seed)
    choices = []
    for _ in range(batches):
        out = model(x, step=0)
        choices.append(torch.equal(out.audio, model.decode(out.z)))
    return choices


def test_skip_choice_is_a_seeded_per_batch_draw() -> None:
    model = _model(generated_skip_prob_start=0.5, generated_skip_prob_end=0.5).train()
    x = _clips(batch=1)
    with torch.no_grad():
        first = _skip_choices(model, x, seed=3, batches=12)
        again = _skip_choices(model, x, seed=3, batches=12)
    assert first == again
    assert any(first)
    assert not all(first)


def test_skip_loss_is_reported_and_weighted() -> None:
    x = _clips()
    torch.manual_seed(5)
    unit = _model(skip_loss_weight=1.0).train()(x, step=0).aux_losses["skip"]
    torch.manual_seed(5)
    doubled = _model(skip_loss_weight=2.0).train()(x, step=0).aux_losses["skip"]
    assert unit.item() > 0
    assert doubled.item() == pytest.approx(2 * unit.item(), rel=1e-5)
    assert "skip" in _model().eval()(x).aux_losses


def test_logvar_has_a_floor() -> None:
    model = _model(logvar_min=-2.0)
    with torch.no_grad():
        model.logvar_head[-1].bias.fill_(-100.0)
    _, logvar = model.encode(_clips())
    assert logvar.min().item() >= -2.0
    assert logvar.max().item() < -1.9


def test_gradients_reach_encoder_decoder_and_skip_generator() -> None:
    model = _model().train()
    x = _clips()
    out = model(x, step=0)  # real skips: the generator learns through the skip loss alone
    recon, _ = reconstruction_loss(out.audio, x, LossConfig(), CLIP_FFT_SIZES)
    kl, _ = kl_loss(out.mu, out.logvar, free_bits=0.0)
    (recon + 0.1 * kl + out.aux_losses["skip"]).backward()
    for name in ("encoder", "mu_head", "logvar_head", "decoder", "skip_generator"):
        grads = [p.grad for p in getattr(model, name).parameters()]
        assert all(g is not None for g in grads), name
        assert sum(g.abs().sum().item() for g in grads) > 0, name


def test_default_config_is_small() -> None:
    model = ClipVAE(ModelConfig(kind="clip_vae", latent_dim=128), sample_rate=44100)
    assert model.clip_samples == 44100
    parameters = sum(p.numel() for p in model.parameters())
    assert 1_000_000 < parameters <= 20_000_000


def test_overfits_one_clip() -> None:
    model = _model(generated_skip_prob_start=1.0, generated_skip_prob_end=1.0)
    t = torch.arange(CLIP_SAMPLES) / SAMPLE_RATE
    harmonics = sum(0.3 / k * torch.sin(2 * math.pi * 110.0 * k * t) for k in range(1, 6))
    noise = 0.05 * torch.randn(CLIP_SAMPLES, generator=torch.Generator().manual_seed(0))
    x = (harmonics + noise).view(1, 1, -1)
    config = LossConfig()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

    def eval_loss() -> float:
        model.eval()
        with torch.no_grad():
            loss, _ = reconstruction_loss(model(x).audio, x, config, CLIP_FFT_SIZES)
        model.train()
        return loss.item()

    before = eval_loss()
    for step in range(100):
        out = model(x, step=step)
        recon, _ = reconstruction_loss(out.audio, x, config, CLIP_FFT_SIZES)
        kl, _ = kl_loss(out.mu, out.logvar, free_bits=0.0)
        loss = recon + 1e-4 * kl + out.aux_losses["skip"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    # Measured in eval mode: decoding from z alone, as validation will (about 4.6 -> 1.1).
    assert eval_loss() < before / 3


def test_one_stage_model_has_no_skips_and_no_idle_parameters() -> None:
    model = _model(channels=[8], strides=[4])
    out = model(_clips(), step=0)
    assert out.aux_losses["skip"].item() == 0.0
    out.audio.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_amplitude_modulation_can_close_to_silence_and_can_be_switched_off() -> None:
    model = _model()
    assert model.decoder.output_conv.out_channels == 2  # waveform + envelope, one channel
    with torch.no_grad():
        model.decoder.output_conv.bias[1] = -30.0  # the envelope's logit: closed
        silent = model.decode(torch.randn(2, model.latent_dim))
    assert silent.abs().max().item() < 1e-9
    plain = _model(amplitude_modulation=False)
    assert plain.decoder.output_conv.out_channels == 1
    assert plain.decode(torch.randn(2, plain.latent_dim)).abs().max().item() > 1e-3
