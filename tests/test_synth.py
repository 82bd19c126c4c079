"""Procedural synth: deterministic, well-formed sounds whose recorded parameters are truthful."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from helius.audio.synth import (
    ONESHOT_KINDS,
    TEXTURE_KINDS,
    make_oneshot,
    make_texture,
    sound_rng,
    write_demo_dataset,
)
from helius.audio.synth.common import midi_to_hz

ONESHOT_RATE = 44100
TEXTURE_RATE = 22050
TEXTURE_SECONDS = 2.0
SEEDS = range(4)


def _make(kind: str, seed, **overrides):
    """A sound of any kind: one-shots at full rate, textures short and at half rate (speed)."""
    if kind in ONESHOT_KINDS:
        return make_oneshot(kind, seed, **overrides), ONESHOT_RATE
    sound = make_texture(kind, seed, TEXTURE_RATE, TEXTURE_SECONDS, **overrides)
    return sound, TEXTURE_RATE


def _power_spectrum(x: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    power = np.abs(np.fft.rfft(x.astype(np.float64), n=4 * x.size)) ** 2
    return np.fft.rfftfreq(4 * x.size, 1.0 / sample_rate), power


def _centroid_hz(x: np.ndarray, sample_rate: int) -> float:
    freqs, power = _power_spectrum(x, sample_rate)
    return float(np.sum(freqs * power) / np.sum(power))


def _flatness(x: np.ndarray, sample_rate: int) -> float:
    """Geometric over arithmetic mean of the power spectrum in 50 Hz .. 0.45 fs: 1 for white."""
    freqs, power = _power_spectrum(x, sample_rate)
    band = power[(freqs > 50) & (freqs < 0.45 * sample_rate)] + 1e-30
    return float(np.exp(np.mean(np.log(band))) / np.mean(band))


def _dominant_hz(x: np.ndarray, sample_rate: int) -> float:
    freqs, power = _power_spectrum(x * np.hanning(x.size), sample_rate)
    return float(freqs[np.argmax(power)])


ALL_KINDS = ONESHOT_KINDS + TEXTURE_KINDS


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_same_seed_same_sound_and_different_seed_different_sound(kind):
    (audio, params), _ = _make(kind, 7)
    (again, params_again), _ = _make(kind, np.random.default_rng(7))
    (other, _), _ = _make(kind, 8)
    assert again.tobytes() == audio.tobytes()
    assert params_again == params
    assert not np.array_equal(other, audio)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_sound_is_well_formed(kind):
    (audio, params), sample_rate = _make(kind, 3)
    seconds = 1.0 if kind in ONESHOT_KINDS else TEXTURE_SECONDS
    assert audio.dtype == np.float32
    assert audio.shape == (round(seconds * sample_rate),)
    assert np.all(np.isfinite(audio))
    peak = float(np.max(np.abs(audio)))
    assert peak <= 1.0
    assert 20 * np.log10(peak) == pytest.approx(params["gain_db"], abs=0.01)
    assert 10 * np.log10(np.mean(audio.astype(np.float64) ** 2)) > -40.0
    assert audio[0] == 0.0
    assert np.max(np.abs(audio[-8:])) < 1e-3 * peak
    assert json.loads(json.dumps(params)) == params


@pytest.mark.parametrize(("kind", "seed"), [(k, s) for k in ("kick", "tom") for s in SEEDS])
def test_pitch_is_the_dominant_frequency_of_the_tail(kind, seed):
    audio, params = make_oneshot(kind, seed)
    tail = audio[int(0.2 * ONESHOT_RATE) : int(0.7 * ONESHOT_RATE)]
    assert _dominant_hz(tail, ONESHOT_RATE) == pytest.approx(params["pitch_hz"], rel=0.15)


@pytest.mark.parametrize("kind", ["pluck", "fm"])
def test_a_lone_note_sounds_at_its_recorded_midi_pitch(kind):
    # density 0 leaves only the first note, which then rings for the whole texture
    overrides = {"density": 0.0} | ({"index_peak": 0.0} if kind == "fm" else {})
    audio, params = make_texture(kind, 5, TEXTURE_RATE, TEXTURE_SECONDS, **overrides)
    assert len(params["notes_midi"]) == 1
    expected_hz = midi_to_hz(params["notes_midi"][0])
    assert _dominant_hz(audio, TEXTURE_RATE) == pytest.approx(expected_hz, rel=0.01)


@pytest.mark.parametrize("seed", SEEDS)
def test_hat_is_brighter_than_kick(seed):
    hat, _ = make_oneshot("hat", seed)
    kick, _ = make_oneshot("kick", seed)
    assert _centroid_hz(hat, ONESHOT_RATE) > 4 * _centroid_hz(kick, ONESHOT_RATE)


BRIGHTNESS_PAIRS_HZ = {kind: (2000.0, 8000.0) for kind in ONESHOT_KINDS} | {
    kind: (600.0, 4000.0) for kind in TEXTURE_KINDS
}


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_higher_brightness_means_higher_spectral_centroid(kind):
    dull_hz, bright_hz = BRIGHTNESS_PAIRS_HZ[kind]
    (dull, dull_params), sample_rate = _make(kind, 11, brightness_hz=dull_hz)
    (bright, bright_params), _ = _make(kind, 11, brightness_hz=bright_hz)
    assert (dull_params["brightness_hz"], bright_params["brightness_hz"]) == (dull_hz, bright_hz)
    # a kick's or tom's brightness only shapes its short beater click, a small share of power
    min_ratio = 1.03 if kind in ("kick", "tom") else 1.1
    assert _centroid_hz(bright, sample_rate) > min_ratio * _centroid_hz(dull, sample_rate)


@pytest.mark.parametrize("kind", ONESHOT_KINDS)
def test_more_noise_means_flatter_spectrum(kind):
    tonal, _ = make_oneshot(kind, 13, noise_amount=0.1)
    noisy, _ = make_oneshot(kind, 13, noise_amount=0.9)
    assert _flatness(noisy, ONESHOT_RATE) > 1.5 * _flatness(tonal, ONESHOT_RATE)


def test_an_override_changes_only_its_own_parameter():
    _, drawn = make_oneshot("snare", 21)
    _, overridden = make_oneshot("snare", 21, decay_seconds=0.2, gain_db=-3.0)
    assert overridden == drawn | {"decay_seconds": 0.2, "gain_db": -3.0}
    _, texture = make_texture("pad", 21, TEXTURE_RATE, TEXTURE_SECONDS, scale="dorian")
    assert texture["scale"] == "dorian"


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="kick, snare, hat, tom, clap"):
        make_oneshot("cowbell", 0)
    with pytest.raises(ValueError, match="pluck, fm, pad, noise_sweep"):
        make_texture("choir", 0)
    with pytest.raises(ValueError, match="unknown parameter"):
        make_oneshot("kick", 0, colour=3.0)
    with pytest.raises(ValueError, match="noise_amount"):
        make_oneshot("kick", 0, noise_amount=1.5)
    with pytest.raises(ValueError, match="scale"):
        make_texture("pluck", 0, TEXTURE_RATE, TEXTURE_SECONDS, scale="bebop")
    with pytest.raises(TypeError):
        make_oneshot("kick", None)
    with pytest.raises(ValueError, match="duration_seconds"):
        make_oneshot("kick", 0, duration_seconds=0.0)


def _folder_bytes(folder) -> dict[str, bytes]:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in files}


def test_demo_dataset_layout_records_and_rerun(tmp_path):
    wrapped = []

    def progress(items):
        wrapped.append(len(items))
        return items

    kwargs = dict(
        n_oneshots=6,
        n_textures=2,
        seed=3,
        sample_rate=TEXTURE_RATE,
        oneshot_seconds=0.5,
        texture_seconds=TEXTURE_SECONDS,
    )
    dataset = write_demo_dataset(tmp_path / "demo", progress=progress, **kwargs)
    out = tmp_path / "demo"
    assert wrapped == [8]
    assert dataset.out_dir == out
    names = [p.relative_to(out).as_posix() for p in dataset.files]
    kinds = ["kick", "snare", "hat", "tom", "clap", "kick"]
    assert names == [f"oneshots/{kind}_{i:04d}.wav" for i, kind in enumerate(kinds)] + [
        "textures/pluck_0000.wav",
        "textures/fm_0001.wav",
    ]
    lines = (out / "params.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == dataset.records
    for path, record in zip(dataset.files, dataset.records, strict=True):
        assert json.loads(path.with_suffix(".json").read_text()) == record
        assert record["file"] == path.relative_to(out).as_posix()
        family = record["family"]
        audio, sample_rate = sf.read(path, dtype="float32")
        info = sf.info(path)
        assert (sample_rate, info.subtype) == (TEXTURE_RATE, "PCM_16")
        seconds = kwargs["oneshot_seconds" if family == "oneshot" else "texture_seconds"]
        assert audio.shape == (round(seconds * TEXTURE_RATE),)
        index = int(path.stem.rsplit("_", 1)[1])
        make = make_oneshot if family == "oneshot" else make_texture
        expected, params = make(record["kind"], sound_rng(3, family, index), TEXTURE_RATE, seconds)
        assert params == record["params"]
        np.testing.assert_allclose(audio, expected, atol=1.0 / 32768)

    before = _folder_bytes(out)
    write_demo_dataset(out, **kwargs)
    assert _folder_bytes(out) == before

    # a file's content does not depend on how many files are generated
    smaller = write_demo_dataset(tmp_path / "small", **(kwargs | {"n_oneshots": 2}))
    for path in smaller.files:
        assert path.read_bytes() == before[path.relative_to(smaller.out_dir).as_posix()]
