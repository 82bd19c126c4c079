"""ClipVAE's initialisation: the untrained model's output is a function of z at the input's level.

With PyTorch's default init the clip VAE started as a drone: every clip decoded to the same
-69 dBFS sound, 80 dB above anything z changed (issue #12 item 6). These tests build the
shipped preset's sizes (1 s at 44.1 kHz) and feed it built-in one-shots.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from helius.audio.synth import ONESHOT_KINDS, make_oneshot
from helius.config import ClipModelConfig, ModelConfig
from helius.fidelity import latent_sensitivity_db
from helius.metrics import rms_db
from helius.models import clip_vae
from helius.models.clip_vae import ClipVAE

RATE = 44100


def _model(**clip: object) -> ClipVAE:
    torch.manual_seed(0)
    config = ModelConfig(kind="clip_vae", latent_dim=32, clip=ClipModelConfig(**clip))
    return ClipVAE(config, sample_rate=RATE).eval()


def _oneshots() -> torch.Tensor:
    """One built-in drum of each kind, 1 s at 44.1 kHz: (5, 1, 44100), about -20..-35 dBFS."""
    clips = [make_oneshot(kind, index, RATE, 1.0)[0] for index, kind in enumerate(ONESHOT_KINDS)]
    return torch.from_numpy(np.stack(clips)).unsqueeze(1)


def test_biases_start_at_zero_except_the_posterior_spread():
    model = _model()
    assert torch.all(model.logvar_head[-1].bias == clip_vae.INITIAL_LOGVAR)
    special = {model.logvar_head[-1]}
    layers = [
        m for m in model.modules() if isinstance(m, nn.Conv1d | nn.ConvTranspose1d | nn.Linear)
    ]
    assert len(layers) > 50
    for layer in layers:
        if layer not in special:
            assert torch.all(layer.bias == 0), layer


def test_latent_mean_has_unit_scale_and_the_posterior_starts_narrow():
    model = _model()
    with torch.no_grad():
        mu, logvar = model.encode(_oneshots())
    spread = mu.std(dim=0).mean().item()  # how far apart the clips' latents lie
    assert 0.3 < spread < 3.0
    # The posterior's std (about 0.14) is well below that spread: z is the clip, not noise.
    assert logvar.exp().sqrt().mean().item() < 0.2 * spread


def test_generated_skips_start_at_the_scale_of_the_encoders():
    """The decoder sees both kinds of skip in training: they must start alike."""
    model = _model()
    clips = _oneshots()
    with torch.no_grad():
        mu, _ = model.encode(clips)
        generated = model.skip_generator(mu)
        _, real = model.encoder(torch.nn.functional.pad(clips, (0, model._padded_samples - RATE)))
    for fake, true in zip(generated, real, strict=True):
        real_rms, fake_rms = true.pow(2).mean().sqrt().item(), fake.pow(2).mean().sqrt().item()
        assert 0.3 < real_rms < 3.0
        assert 0.5 < fake_rms / real_rms < 2.0


@pytest.mark.parametrize("amplitude_modulation", [False, True])
def test_untrained_output_follows_z_at_the_input_level(amplitude_modulation):
    """The output starts within 10 dB of the input's level; with amplitude modulation, after
    the envelope's initial gain sigmoid(0) (-6 dB)."""
    model = _model(amplitude_modulation=amplitude_modulation)
    clips = _oneshots()
    with torch.no_grad():
        mu, _ = model.encode(clips)
        audio = model.decode(mu)
        sensitivity = latent_sensitivity_db(model.decode, mu)
    envelope_db = 0.0
    if amplitude_modulation:
        envelope_db = 20 * math.log10(0.5)
    level_gap_db = rms_db(audio) - rms_db(clips) - envelope_db
    assert torch.all(level_gap_db.abs() < 10.0), level_gap_db
    # Another clip's latent changes the output by about as much as the output itself.
    assert sensitivity["sensitivity_shuffle_db"] > -3.0
    assert sensitivity["sensitivity_zero_db"] > -3.0


def test_pytorch_default_init_made_the_drone_this_guards_against(monkeypatch):
    """The same checks fail without `initialise` (PyTorch's random biases): the measurements
    above can tell."""
    monkeypatch.setattr(clip_vae, "initialise", lambda model: None)
    model = _model()
    with torch.no_grad():
        mu, _ = model.encode(_oneshots())
        sensitivity = latent_sensitivity_db(model.decode, mu)
    assert mu.std(dim=0).mean().item() < 0.01
    assert model.decoder.output_conv.bias.abs().max().item() > 0
    assert sensitivity["sensitivity_shuffle_db"] < -30.0
