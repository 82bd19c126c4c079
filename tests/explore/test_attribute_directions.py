"""Acceptance: attribute directions move decoded sounds the right way on a clip VAE trained
with the shipped preset.

configs/clip.yaml, made smaller only in size and length (a 0.125 s clip at 16 kHz, a
4-dimensional latent, one encoder stage, a few hundred steps), trains through `fit` exactly as
`helius train` does (its loss, KL schedule, free bits, learning rate and initialisation) on
built-in one-shots whose brightness, noise amount and gain were drawn independently and
recorded. Moving a latent along +direction must then raise the measured attribute of the
decoded sound relative to moving it along -direction, on average over several latents, for
every attribute and for directions found both ways: regressed from decoded prior samples, and
from examples split by the known generating parameter (top third against bottom third of each
drum kind).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import REPO, write

from helius.audio.synth import ONESHOT_KINDS, make_oneshot
from helius.config import load_config
from helius.data.prep import prepare
from helius.data.segment import PrepSettings
from helius.explore import (
    ATTRIBUTES,
    ExplorerSession,
    direction_from_examples,
    directions_from_samples,
    measure,
    move,
)
from helius.train.trainer import fit
from helius.train.vae_task import VAETask

SAMPLE_RATE = 16000
CLIP_SECONDS = 0.125
TRAIN_SOUNDS = 200
TRAIN_STEPS = 600
VAL_FRACTION = 0.05
# The preset made smaller, nothing else: loss, KL, optimiser and initialisation are its own.
SMALLER = [
    f"data.sample_rate={SAMPLE_RATE}",
    f"data.segment_seconds={CLIP_SECONDS}",
    f"model.clip.clip_seconds={CLIP_SECONDS}",
    "model.latent_dim=4",
    "model.clip.channels=[16]",  # one stage: no skips for the decoder to lean on
    "model.clip.strides=[16]",
    "model.clip.hidden=64",
    "train.epochs=null",
    f"train.max_steps={TRAIN_STEPS}",
]
PARAMETER_OF = {"brightness": "brightness_hz", "noisiness": "noise_amount", "loudness": "gain_db"}
# Smallest mean change between +direction and -direction that counts as a real move, per way
# of finding the direction. Measured (brightness Hz, noisiness, loudness dB):
#   from examples:  trained 360, 0.065, 8.9;  untrained (learning rate ~0) 7, 0.015, 5.1
#   from samples:   trained 193, 0.032, 2.7;  untrained 60, 0.021, 3.5
# From examples the thresholds sit between the two, so only a trained encoder and decoder that
# agree pass. From decoded samples the regression follows whatever the decoder does, and the
# preset's initialisation already lets z decide the output: the untrained model passes the
# noisiness and loudness thresholds there too, which then check the direction code alone.
MIN_CHANGE = {
    "examples": {"brightness": 100.0, "noisiness": 0.03, "loudness": 7.0},
    "samples": {"brightness": 100.0, "noisiness": 0.01, "loudness": 0.5},
}


def _oneshots(count: int, seed: int) -> tuple[np.ndarray, list[dict]]:
    """Every kind in turn, brightness, noise amount and gain drawn independently per sound."""
    draws = np.random.default_rng(seed)
    audio, params = [], []
    for index in range(count):
        overrides = {
            "brightness_hz": round(math.exp(draws.uniform(math.log(400), math.log(7000))), 1),
            "noise_amount": round(float(draws.uniform(0.0, 1.0)), 3),
            "gain_db": round(float(draws.uniform(-24.0, -1.0)), 2),
        }
        sound, recorded = make_oneshot(
            ONESHOT_KINDS[index % len(ONESHOT_KINDS)],
            np.random.default_rng([seed, index]),
            SAMPLE_RATE,
            CLIP_SECONDS,
            **overrides,
        )
        audio.append(sound)
        params.append(recorded)
    return np.stack(audio)[:, None], params


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[ExplorerSession, np.ndarray, list[dict]]:
    """(session on the trained checkpoint, training one-shots (N, 1, T), their parameters)."""
    root = tmp_path_factory.mktemp("attributes")
    audio, params = _oneshots(TRAIN_SOUNDS, seed=0)
    for index, clip in enumerate(audio):
        write(root / "shots" / f"shot_{index:03d}.wav", clip, SAMPLE_RATE, subtype="FLOAT")
    settings = PrepSettings(SAMPLE_RATE, CLIP_SECONDS, subtype="FLOAT", one_shot=True)
    prepare(root / "shots", root / "data", settings, val_fraction=VAL_FRACTION, workers=1)
    config = load_config(
        REPO / "configs" / "clip.yaml",
        [
            *SMALLER,
            f"data.train_index={root / 'data' / 'train_index.txt'}",
            f"data.val_index={root / 'data' / 'val_index.txt'}",
            f"train.checkpoint_dir={root / 'checkpoints'}",
            f"train.log_dir={root / 'runs'}",
            "train.device=cpu",
        ],
    )
    result = fit(config, VAETask(config))
    return ExplorerSession(result.last_path), audio, params


def _change(session: ExplorerSession, bases: torch.Tensor, direction, name: str) -> np.ndarray:
    """Measured `name` of decode(z + d) minus that of decode(z - d), per base latent z."""
    up = session.decode_batch(torch.stack([move(z, direction, 1.0) for z in bases]))
    down = session.decode_batch(torch.stack([move(z, direction, -1.0) for z in bases]))
    return np.array(
        [
            measure(higher, SAMPLE_RATE)[name] - measure(lower, SAMPLE_RATE)[name]
            for higher, lower in zip(up, down, strict=True)
        ]
    )


def _assert_moves(change: np.ndarray, name: str, found_from: str) -> None:
    assert change.mean() > MIN_CHANGE[found_from][name], f"{name}: changes {np.round(change, 3)}"
    assert (change > 0).mean() >= 0.6, f"{name}: changes {np.round(change, 3)}"


@pytest.mark.parametrize("name", ATTRIBUTES)
def test_directions_from_decoded_samples_move_the_attribute(trained, name: str) -> None:
    session, _, _ = trained
    directions = directions_from_samples(session, n=64, seed=0)
    bases = session.sample_prior(16, seed=1)
    _assert_moves(_change(session, bases, directions[name], name), name, "samples")


@pytest.mark.parametrize("name", ATTRIBUTES)
def test_directions_from_generating_parameters_move_the_attribute(trained, name: str) -> None:
    session, audio, params = trained
    latents = torch.stack([session.encode_audio(clip) for clip in audio])
    values = np.array([recorded[PARAMETER_OF[name]] for recorded in params])
    kinds = np.arange(len(params)) % len(ONESHOT_KINDS)
    # Thirds within each kind, so the direction follows the parameter, not the kind mix.
    positive, negative = [], []
    for kind in range(len(ONESHOT_KINDS)):
        members = np.flatnonzero(kinds == kind)
        order = members[np.argsort(values[members])]
        third = len(order) // 3
        positive.extend(order[-third:])
        negative.extend(order[:third])
    direction = direction_from_examples(latents[positive], latents[negative])
    held_out, _ = _oneshots(16, seed=1)  # sounds the model never saw
    bases = torch.stack([session.encode_audio(clip) for clip in held_out])
    _assert_moves(_change(session, bases, direction, name), name, "examples")
