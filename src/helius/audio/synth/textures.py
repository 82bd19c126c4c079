"""Musical textures (plucked and FM note sequences, pads, noise sweeps) with numpy and scipy."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import signal

from helius.audio.synth.common import (
    FILTER_LIMIT,
    SCALES,
    Draws,
    RngLike,
    Sound,
    apply_filter,
    as_generator,
    decay_envelope,
    finish_sound,
    frame_count,
    midi_to_hz,
)

# --- textures ----------------------------------------------------------------------------


def _texture(
    kind: str, render: Callable, rng: RngLike, sample_rate: int, duration_seconds: float, overrides
) -> Sound:
    rng = as_generator(rng)
    n = frame_count(sample_rate, duration_seconds, 0.5)
    draws = Draws(rng, overrides)
    draws.uniform("gain_db", -6.0, -1.0, 2, (-60.0, 0.0))
    audio = render(draws, n, sample_rate)
    params = {"instrument": kind, **draws.values}
    return finish_sound(audio, sample_rate, params["gain_db"], 0.005, 0.05), params


def _draw_key_and_tempo(draws: Draws, tempo_range_bpm: tuple[float, float]) -> None:
    draws.choice("scale", tuple(SCALES))
    draws.choice("root_midi", tuple(range(45, 57)))
    draws.uniform("tempo_bpm", *tempo_range_bpm, 1, (20.0, 400.0))


def _melody(draws: Draws, n: int, sr: int, octave_offset: int) -> tuple[list[int], list[float]]:
    """A random walk over the scale on a sixteenth-note grid; each step sounds with `density`."""
    v, rng = draws.values, draws.rng
    step_seconds = 60.0 / v["tempo_bpm"] / 4
    # the last onsets leave 0.1 s so every note is heard before the end
    n_steps = max(1, math.ceil((n / sr - 0.1) / step_seconds))
    hits = rng.random(n_steps) < v["density"]
    hits[0] = True
    moves = rng.choice(
        (-3, -2, -1, 0, 1, 2, 3), n_steps, p=(0.05, 0.15, 0.25, 0.1, 0.25, 0.15, 0.05)
    )
    low = v["root_midi"] + 12 * octave_offset
    pitches = [low + 12 * octave + i for octave in (0, 1) for i in SCALES[v["scale"]]]
    pitches.append(low + 24)
    position = int(rng.integers(len(pitches)))
    notes, onsets = [], []
    for step in np.flatnonzero(hits):
        position = abs(position + int(moves[step]))
        if position >= len(pitches):
            position = 2 * (len(pitches) - 1) - position
        notes.append(pitches[position])
        onsets.append(round(float(step * step_seconds), 4))
    v["notes_midi"], v["onsets_seconds"] = notes, onsets
    return notes, onsets


def _note_spans(onsets: list[float], n: int, sr: int, release_seconds: float):
    """(start, end, fade) frames per note: a note rings until the next one starts, then fades."""
    starts = [round(onset * sr) for onset in onsets]
    release = round(release_seconds * sr)
    for i, start in enumerate(starts):
        end = min(n, starts[i + 1] + release) if i + 1 < len(starts) else n
        fade = end - starts[i + 1] if i + 1 < len(starts) else 0
        yield start, end, fade


def _karplus_strong(rng, freq_hz: float, n: int, sr: int, decay_seconds: float, bright_hz: float):
    delay = sr / freq_hz
    period = int(delay - 0.5)
    # three-tap loop filter: averaging (the string's damping) plus a fractional delay for tuning
    frac = delay - 0.5 - period
    taps = ((1.0 - frac) / 2, 0.5, frac / 2)
    # loop gain per period that makes the fundamental fall 60 dB in decay_seconds; the
    # averaging taps shorten the upper partials further, as a real string's damping does
    gain = 10.0 ** (-3.0 / (decay_seconds * freq_hz))
    y = np.zeros(n + 2)  # two leading zeros stand for the string's silent past
    burst = apply_filter(rng.standard_normal(period), "lowpass", bright_hz, sr)
    y[2 : 2 + min(period, n)] = (burst - burst.mean())[:n]
    # the recursion reaches back at least one period, so a whole period is computed at once
    for start in range(period, n, period):
        end = min(start + period, n)
        back = start - period
        y[2 + start : 2 + end] = gain * (
            taps[0] * y[2 + back : 2 + end - period]
            + taps[1] * y[1 + back : 1 + end - period]
            + taps[2] * y[back : end - period]
        )
    return y[2:]


def _render_pluck(draws: Draws, n: int, sr: int) -> np.ndarray:
    _draw_key_and_tempo(draws, (70.0, 140.0))
    draws.uniform("density", 0.3, 0.8, 3, (0.0, 1.0))
    bright = draws.uniform("brightness_hz", 1500.0, 8000.0, 1, (20.0, FILTER_LIMIT * sr), True)
    decay = draws.uniform("decay_seconds", 0.8, 3.0, 3, (0.02, 60.0))
    draws.check_all_used()
    notes, onsets = _melody(draws, n, sr, octave_offset=0)
    out = np.zeros(n)
    for note, (start, end, fade) in zip(notes, _note_spans(onsets, n, sr, 0.02), strict=True):
        tone = _karplus_strong(draws.rng, midi_to_hz(note), end - start, sr, decay, bright)
        tone[tone.size - fade :] *= np.linspace(1.0, 0.0, fade)
        out[start:end] += tone
    return out


def _render_fm(draws: Draws, n: int, sr: int) -> np.ndarray:
    _draw_key_and_tempo(draws, (70.0, 140.0))
    draws.uniform("density", 0.3, 0.8, 3, (0.0, 1.0))
    bright = draws.uniform("brightness_hz", 2000.0, 10000.0, 1, (20.0, FILTER_LIMIT * sr), True)
    ratio = draws.choice("mod_ratio", (0.5, 1.0, 2.0, 3.0, 4.0))
    index_peak = draws.uniform("index_peak", 1.0, 6.0, 3, (0.0, 50.0))
    index_decay = draws.uniform("index_decay_seconds", 0.05, 0.6, 4, (0.005, 60.0))
    attack = draws.uniform("attack_seconds", 0.002, 0.03, 4, (0.0005, 10.0))
    decay = draws.uniform("decay_seconds", 0.4, 2.0, 3, (0.02, 60.0))
    draws.check_all_used()
    notes, onsets = _melody(draws, n, sr, octave_offset=1)
    out = np.zeros(n)
    for note, (start, end, fade) in zip(notes, _note_spans(onsets, n, sr, 0.06), strict=True):
        t = np.arange(end - start) / sr
        carrier_hz = midi_to_hz(note)
        index = index_peak * np.exp(-t / index_decay)
        tone = np.sin(
            2 * np.pi * carrier_hz * t + index * np.sin(2 * np.pi * ratio * carrier_hz * t)
        )
        tone *= np.minimum(1.0, t / attack) * decay_envelope(t, decay)
        tone[tone.size - fade :] *= np.linspace(1.0, 0.0, fade)
        out[start:end] += tone
    return apply_filter(out, "lowpass", bright, sr)


def _saw(freq_hz: float, n: int, sr: int, phase0: float) -> np.ndarray:
    """A sawtooth with polyBLEP corrections at the wrap, so high partials do not alias."""
    dt = freq_hz / sr
    phase = (phase0 + dt * np.arange(n)) % 1.0
    out = 2.0 * phase - 1.0
    low = phase < dt
    x = phase[low] / dt
    out[low] -= 2 * x - x * x - 1.0
    high = phase > 1.0 - dt
    x = (phase[high] - 1.0) / dt
    out[high] -= x * x + 2 * x + 1.0
    return out


def _swept_biquad(
    x: np.ndarray,
    btype: str,
    centre_hz: float,
    octaves: float,
    rate_hz: float,
    phase: float,
    q: float,
    sr: int,
) -> np.ndarray:
    """An RBJ low-pass or band-pass whose corner swings `octaves` either side of `centre_hz`.

    Coefficients change every block of 128 samples with the filter state carried over: the
    sweeps are slow, so the steps are inaudible and the cost is one lfilter call per block.
    """
    block = 128
    starts = np.arange(0, x.size, block)
    t = (starts + block / 2) / sr
    f0 = centre_hz * 2.0 ** (octaves * np.sin(2 * np.pi * (rate_hz * t + phase)))
    f0 = np.clip(f0, 20.0, FILTER_LIMIT * sr)
    w0 = 2 * np.pi * f0 / sr
    alpha, cos_w0 = np.sin(w0) / (2 * q), np.cos(w0)
    if btype == "lowpass":
        b = np.stack([(1 - cos_w0) / 2, 1 - cos_w0, (1 - cos_w0) / 2], axis=1)
    else:
        b = np.stack([alpha, np.zeros_like(alpha), -alpha], axis=1)
    a = np.stack([1 + alpha, -2 * cos_w0, 1 - alpha], axis=1)
    out, state = np.empty_like(x), np.zeros(2)
    for i, start in enumerate(starts):
        out[start : start + block], state = signal.lfilter(
            b[i], a[i], x[start : start + block], zi=state
        )
    return out


def _render_pad(draws: Draws, n: int, sr: int) -> np.ndarray:
    _draw_key_and_tempo(draws, (60.0, 110.0))
    chord_beats = draws.choice("chord_beats", (4, 8))
    detune = draws.uniform("detune_cents", 4.0, 18.0, 2, (0.0, 100.0))
    attack = draws.uniform("attack_seconds", 0.2, 1.2, 3, (0.001, 30.0))
    release = draws.uniform("release_seconds", 0.3, 1.2, 3, (0.001, 30.0))
    bright = draws.uniform("brightness_hz", 500.0, 4000.0, 1, (20.0, FILTER_LIMIT * sr), True)
    lfo_hz = draws.uniform("lfo_rate_hz", 0.05, 0.4, 3, (0.0, 20.0))
    lfo_octaves = draws.uniform("lfo_depth_octaves", 0.3, 1.5, 3, (0.0, 6.0))
    lfo_phase = draws.uniform("lfo_phase_cycles", 0.0, 1.0, 3, (0.0, 1.0))
    q = draws.uniform("resonance_q", 0.7, 2.5, 3, (0.3, 20.0))
    draws.check_all_used()
    v, rng = draws.values, draws.rng
    chord_seconds = chord_beats * 60.0 / v["tempo_bpm"]
    n_chords = math.ceil(n / sr / chord_seconds)
    scale, root = SCALES[v["scale"]], v["root_midi"] + 12
    degrees = rng.integers(0, len(scale), n_chords)
    degrees[0] = 0  # open on the tonic so the key is heard
    with_seventh = rng.random(n_chords) < 0.4
    chords = [
        [
            root + 12 * (d // len(scale)) + scale[d % len(scale)]
            for d in range(degree, degree + (8 if seventh else 6), 2)
        ]
        for degree, seventh in zip(degrees.tolist(), with_seventh.tolist(), strict=True)
    ]
    v["chords_midi"] = chords
    v["onsets_seconds"] = [round(k * chord_seconds, 4) for k in range(n_chords)]
    out = np.zeros(n)
    hold, fade = round(chord_seconds * sr), round(release * sr)
    for onset, chord in zip(v["onsets_seconds"], chords, strict=True):
        start = round(onset * sr)
        t = np.arange(min(n - start, hold + fade)) / sr
        env = np.minimum(1.0, t / attack)
        tail = np.clip((t - chord_seconds) / release, 0.0, 1.0)
        env *= 0.5 * (1.0 + np.cos(np.pi * tail))
        for note in chord:
            for cents in (-detune, 0.0, detune):
                hz = midi_to_hz(note + cents / 100)
                out[start : start + t.size] += env * _saw(hz, t.size, sr, rng.random())
    return _swept_biquad(out, "lowpass", bright, lfo_octaves, lfo_hz, lfo_phase, q, sr)


def _render_noise_sweep(draws: Draws, n: int, sr: int) -> np.ndarray:
    bright = draws.uniform("brightness_hz", 400.0, 3000.0, 1, (20.0, FILTER_LIMIT * sr), True)
    octaves = draws.uniform("sweep_octaves", 1.0, 4.0, 3, (0.0, 10.0))
    period = draws.uniform("sweep_period_seconds", 2.0, 8.0, 3, (0.05, 600.0))
    phase = draws.uniform("sweep_phase_cycles", 0.0, 1.0, 3, (0.0, 1.0))
    q = draws.uniform("q", 1.5, 6.0, 3, (0.3, 50.0))
    draws.check_all_used()
    draws.values["low_hz"] = round(max(20.0, bright * 2.0 ** (-octaves / 2)), 1)
    draws.values["high_hz"] = round(min(FILTER_LIMIT * sr, bright * 2.0 ** (octaves / 2)), 1)
    noise = draws.rng.standard_normal(n)
    return _swept_biquad(noise, "bandpass", bright, octaves / 2, 1.0 / period, phase, q, sr)


def _texture_voice(kind: str, render: Callable) -> Callable[..., Sound]:
    def voice(
        rng: RngLike, sample_rate: int = 44100, duration_seconds: float = 10.0, **overrides: Any
    ) -> Sound:
        return _texture(kind, render, rng, sample_rate, duration_seconds, overrides)

    voice.__name__ = voice.__qualname__ = f"make_{kind}"
    voice.__doc__ = (
        f"A {kind} texture: (float32 mono audio, parameters). Keyword overrides replace any "
        "drawn scalar parameter (brightness_hz, tempo_bpm, scale, gain_db, ...)."
    )
    return voice


make_pluck = _texture_voice("pluck", _render_pluck)
make_fm = _texture_voice("fm", _render_fm)
make_pad = _texture_voice("pad", _render_pad)
make_noise_sweep = _texture_voice("noise_sweep", _render_noise_sweep)
