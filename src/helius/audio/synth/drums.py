"""Drum one-shots (kick, snare, hat, tom, clap) rendered with numpy and scipy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from helius.audio.synth.common import (
    FILTER_LIMIT,
    Draws,
    RngLike,
    Sound,
    apply_filter,
    as_generator,
    decay_envelope,
    finish_sound,
    frame_count,
    phase_of,
    unit_rms,
)

# --- drum one-shots ----------------------------------------------------------------------

# Draw ranges per kind: pitch_hz, decay_seconds (to -60 dB), brightness_hz, noise_amount.
_ONESHOT_RANGES: dict[str, tuple[tuple[float, float], ...]] = {
    "kick": ((42.0, 80.0), (0.3, 0.9), (1500.0, 7000.0), (0.05, 0.35)),
    "snare": ((150.0, 260.0), (0.15, 0.45), (3000.0, 12000.0), (0.4, 0.85)),
    "hat": ((280.0, 520.0), (0.08, 0.6), (5000.0, 10000.0), (0.2, 0.9)),
    "tom": ((75.0, 220.0), (0.3, 0.9), (1000.0, 5000.0), (0.05, 0.35)),
    "clap": ((800.0, 1600.0), (0.15, 0.45), (2500.0, 9000.0), (0.3, 0.8)),
}
_HAT_RATIOS = (2.0, 3.0, 4.16, 5.43, 6.79, 8.21)  # inharmonic, as in classic analogue hats


def _oneshot(
    kind: str, render: Callable, rng: RngLike, sample_rate: int, duration_seconds: float, overrides
) -> Sound:
    """Shared frame of every drum: draw, render a tone and a noise part, mix, finish."""
    rng = as_generator(rng)
    n = frame_count(sample_rate, duration_seconds, 0.05)
    pitch, decay, bright, noise = _ONESHOT_RANGES[kind]
    limit_hz = (20.0, FILTER_LIMIT * sample_rate)
    draws = Draws(rng, overrides)
    draws.uniform("pitch_hz", *pitch, 2, limit_hz, log=True)
    draws.uniform("decay_seconds", *decay, 4, (0.005, 60.0))
    draws.uniform("brightness_hz", *bright, 1, limit_hz, log=True)
    draws.uniform("noise_amount", *noise, 3, (0.0, 1.0))
    draws.uniform("gain_db", -6.0, -1.0, 2, (-60.0, 0.0))
    t = np.arange(n) / sample_rate
    tone, noise_part = render(draws, t, sample_rate, draws.values)
    amount = draws.values["noise_amount"]
    mix = (1.0 - amount) * unit_rms(tone) + amount * unit_rms(noise_part)
    return finish_sound(mix, sample_rate, draws.values["gain_db"], 0.001, 0.01), draws.values


def _render_kick(draws: Draws, t, sr, p):
    ratio = draws.uniform("sweep_ratio", 2.5, 5.0, 3, (1.0, 20.0))
    sweep = draws.uniform("sweep_seconds", 0.008, 0.03, 4, (0.001, 1.0))
    click = draws.uniform("click_seconds", 0.01, 0.03, 4, (0.001, 1.0))
    draws.check_all_used()
    freq = p["pitch_hz"] * (1.0 + (ratio - 1.0) * np.exp(-t / sweep))
    tone = np.sin(phase_of(freq, sr)) * decay_envelope(t, p["decay_seconds"])
    noise = apply_filter(draws.rng.standard_normal(t.size), "lowpass", p["brightness_hz"], sr)
    return tone, noise * decay_envelope(t, click)


def _render_snare(draws: Draws, t, sr, p):
    tone_decay = draws.uniform("tone_decay_seconds", 0.05, 0.2, 4, (0.005, 60.0))
    draws.check_all_used()
    # a quick pitch drop and a second membrane mode make the body sound struck, not sung
    freq = p["pitch_hz"] * (1.0 + 0.25 * np.exp(-t / 0.01))
    body = np.sin(phase_of(freq, sr)) + 0.5 * np.sin(phase_of(1.59 * freq, sr))
    noise = apply_filter(draws.rng.standard_normal(t.size), "highpass", 300.0, sr)
    noise = apply_filter(noise, "lowpass", p["brightness_hz"], sr)
    return body * decay_envelope(t, tone_decay), noise * decay_envelope(t, p["decay_seconds"])


def _render_hat(draws: Draws, t, sr, p):
    draws.check_all_used()
    offsets = draws.rng.uniform(0.0, 1.0, len(_HAT_RATIOS))
    metal = sum(
        np.sign(np.sin(2 * np.pi * (p["pitch_hz"] * ratio * t + offset)))
        for ratio, offset in zip(_HAT_RATIOS, offsets, strict=True)
    )
    noise = draws.rng.standard_normal(t.size)
    env = decay_envelope(t, p["decay_seconds"])
    cutoff = p["brightness_hz"]
    return apply_filter(metal, "highpass", cutoff, sr, 4) * env, apply_filter(
        noise, "highpass", cutoff, sr, 4
    ) * env


def _render_tom(draws: Draws, t, sr, p):
    ratio = draws.uniform("sweep_ratio", 1.3, 1.9, 3, (1.0, 20.0))
    sweep = draws.uniform("sweep_seconds", 0.02, 0.06, 4, (0.001, 1.0))
    noise_decay = draws.uniform("noise_decay_seconds", 0.04, 0.12, 4, (0.005, 60.0))
    draws.check_all_used()
    freq = p["pitch_hz"] * (1.0 + (ratio - 1.0) * np.exp(-t / sweep))
    decay = p["decay_seconds"]
    body = np.sin(phase_of(freq, sr)) * decay_envelope(t, decay)
    body += 0.3 * np.sin(phase_of(1.59 * freq, sr)) * decay_envelope(t, 0.4 * decay)
    noise = apply_filter(draws.rng.standard_normal(t.size), "lowpass", p["brightness_hz"], sr)
    return body, noise * decay_envelope(t, noise_decay)


def _render_clap(draws: Draws, t, sr, p):
    n_bursts = int(draws.choice("n_bursts", (3, 4, 5)))
    spacing = draws.uniform("burst_spacing_seconds", 0.006, 0.012, 4, (0.001, 0.05))
    draws.check_all_used()
    env = sum(decay_envelope(t - k * spacing, 0.015) for k in range(n_bursts))
    env = env + decay_envelope(t - (n_bursts - 1) * spacing, p["decay_seconds"])
    # the "tone" of a clap is the hand-cavity resonance: noise in a band around pitch_hz
    pitch = p["pitch_hz"]
    band = (pitch / 1.3, min(pitch * 1.3, FILTER_LIMIT * sr))
    resonance = apply_filter(draws.rng.standard_normal(t.size), "bandpass", band, sr)
    noise = draws.rng.standard_normal(t.size)
    cutoff = p["brightness_hz"]
    return apply_filter(resonance * env, "lowpass", cutoff, sr), apply_filter(
        noise * env, "lowpass", cutoff, sr
    )


def _oneshot_voice(kind: str, render: Callable) -> Callable[..., Sound]:
    def voice(
        rng: RngLike, sample_rate: int = 44100, duration_seconds: float = 1.0, **overrides: Any
    ) -> Sound:
        return _oneshot(kind, render, rng, sample_rate, duration_seconds, overrides)

    voice.__name__ = voice.__qualname__ = f"make_{kind}"
    voice.__doc__ = (
        f"A {kind} one-shot: (float32 mono audio, parameters). Keyword overrides replace any "
        "drawn parameter (pitch_hz, decay_seconds, brightness_hz, noise_amount, gain_db, ...)."
    )
    return voice


make_kick = _oneshot_voice("kick", _render_kick)
make_snare = _oneshot_voice("snare", _render_snare)
make_hat = _oneshot_voice("hat", _render_hat)
make_tom = _oneshot_voice("tom", _render_tom)
make_clap = _oneshot_voice("clap", _render_clap)
