"""A one-shot evaluation set built from packages: General MIDI percussion rendered by
FluidSynth through FluidR3 GM, plus helius's built-in synthetic drums, split by name into
train and unseen.

Nothing is downloaded: the soundfont and the synthesiser are Debian packages
(`apt-get install fluidsynth fluid-soundfont-gm`). Every drum kit of the soundfont's bank 128
plays notes 35..81 at two velocities; each hit is one 1.0 s mono 44.1 kHz 16-bit WAV with the
hit at t = 0 and its decay tail kept. A kit is one MIDI file with all its hits spaced apart,
rendered once and cut at the known hit times. Silent hits (no sample for that note) and hits
that copy one of an earlier kit up to a gain (kit variants share samples) are skipped and
counted, so an unseen hit has no copy in training.

    python bench/oneshots.py --out /tmp/oneshots      # render (or reuse) and list the split

Layout: `train/` and `unseen/` each hold `gm__<kit>__n<note>_v<velocity>.wav` and
`synth__<kind>_<index>.wav`; `split.json` records the settings, every clip and the counts.
Unseen clips are every 20th group by sorted name (a GM group is one kit's note at both
velocities, so a held-out drum is not heard at another velocity in training).
"""

from __future__ import annotations

import argparse
import json
import shutil
import struct
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from helius.files import atomic_write_text

SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
RATE = 44100
HIT_SECONDS = 1.0
SPACING_SECONDS = 1.5  # between hits in a kit's MIDI file; the hit is cut off at 1.02 s
NOTES = range(35, 82)  # General MIDI percussion key map: acoustic bass drum .. open triangle
VELOCITIES = (100, 60)
SILENCE_DB = -60.0  # RMS over the clip, as `helius prep` drops silent segments
# A hit whose difference from a scaled kept hit of the same velocity is this far below it is
# a copy: kit variants share samples, at another preset volume or lightly filtered.
DUPLICATE_DB = -20.0
SYNTH_PER_KIND = 40
SYNTH_SEED = 12
UNSEEN_EVERY = 20
DRUM_CHANNEL = 9  # MIDI channel 10
TICKS_PER_QUARTER = 480
TEMPO_US_PER_QUARTER = 500_000  # 120 bpm: one tick is 1/960 s
ALL_SOUND_OFF = 120  # controller that silences the channel at once, so no tail bleeds on
RENDER_TIMEOUT_SECONDS = 600


@dataclass(frozen=True)
class Clip:
    name: str  # file name inside train/ or unseen/
    group: str  # what the split is decided on
    source: str  # "gm" or "synth"
    unseen: bool


# --- reading the soundfont and writing MIDI ------------------------------------------------


def drum_kits(soundfont: Path = SOUNDFONT) -> list[tuple[int, str]]:
    """(program, name) of every preset in bank 128 (the GM drum kits), by program.

    Reads the sf2's `phdr` chunk (38-byte preset headers) and skips the sample data.
    """
    with soundfont.open("rb") as handle:
        riff, size, form = struct.unpack("<4sI4s", handle.read(12))
        if riff != b"RIFF" or form != b"sfbk":
            raise ValueError(f"{soundfont} is not a SoundFont 2 file")
        while handle.tell() < 8 + size:
            chunk, chunk_size = struct.unpack("<4sI", handle.read(8))
            if chunk == b"LIST" and handle.read(4) == b"pdta":
                stop = handle.tell() + chunk_size - 4
                while handle.tell() < stop:
                    sub, sub_size = struct.unpack("<4sI", handle.read(8))
                    if sub == b"phdr":
                        return _bank_128(handle.read(sub_size))
                    handle.seek(sub_size + (sub_size & 1), 1)
            elif chunk == b"LIST":
                handle.seek(chunk_size - 4 + (chunk_size & 1), 1)
            else:
                handle.seek(chunk_size + (chunk_size & 1), 1)
    raise ValueError(f"{soundfont} has no preset headers")


def _bank_128(headers: bytes) -> list[tuple[int, str]]:
    kits = []
    for offset in range(0, len(headers) - 38, 38):  # the last record is the "EOP" terminator
        raw_name, program, bank = struct.unpack_from("<20sHH", headers, offset)
        if bank == 128:
            kits.append((program, raw_name.split(b"\0")[0].decode("latin-1").strip()))
    return sorted(kits)


def seconds_to_ticks(seconds: float) -> int:
    return round(seconds * 1e6 / TEMPO_US_PER_QUARTER * TICKS_PER_QUARTER)


def _variable_length(value: int) -> bytes:
    """A MIDI variable-length quantity: 7 bits per byte, high bit set on all but the last."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def hit_times(hits: int) -> list[float]:
    return [index * SPACING_SECONDS for index in range(hits)]


def kit_midi(program: int, hits: list[tuple[int, int]]) -> bytes:
    """A format-0 Standard MIDI File: the kit's program on the drum channel, then each
    (note, velocity) at `hit_times`, silenced (all sound off) just after its 1 s window."""
    events: list[tuple[int, bytes]] = [
        (0, b"\xff\x51\x03" + TEMPO_US_PER_QUARTER.to_bytes(3, "big")),
        (0, bytes([0xC0 | DRUM_CHANNEL, program])),
    ]
    cut = seconds_to_ticks(HIT_SECONDS + 0.02)
    starts = [seconds_to_ticks(seconds) for seconds in hit_times(len(hits))]
    for start, (note, velocity) in zip(starts, hits, strict=True):
        events.append((start, bytes([0x90 | DRUM_CHANNEL, note, velocity])))
        events.append((start + cut // 2, bytes([0x80 | DRUM_CHANNEL, note, 0])))
        events.append((start + cut, bytes([0xB0 | DRUM_CHANNEL, ALL_SOUND_OFF, 0])))
    end = seconds_to_ticks(hit_times(len(hits) + 1)[-1])
    events.append((end, b"\xff\x2f\x00"))
    track, now = bytearray(), 0
    for tick, message in sorted(events, key=lambda event: event[0]):  # stable: order kept
        track += _variable_length(tick - now) + message
        now = tick
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, TICKS_PER_QUARTER)
    return header + b"MTrk" + struct.pack(">I", len(track)) + bytes(track)


def cut_hits(audio: np.ndarray, count: int, rate: int = RATE) -> list[np.ndarray]:
    """(frames,) render -> `count` clips of exactly HIT_SECONDS starting at the hit times
    (zero-padded if the render ends early)."""
    length = round(HIT_SECONDS * rate)
    clips = []
    for start_seconds in hit_times(count):
        start = round(start_seconds * rate)
        clip = audio[start : start + length]
        clips.append(np.pad(clip, (0, length - len(clip))).astype(np.float32))
    return clips


def rms_db(audio: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(audio, dtype=np.float64)) + 1e-20))


# --- rendering -----------------------------------------------------------------------------


def render_kit(program: int, hits: list[tuple[int, int]], soundfont: Path = SOUNDFONT):
    """The kit's hits as clips, rendered in one FluidSynth run (float, no dither; reverb and
    chorus off so nothing rings on past the all-sound-off into the next hit's window)."""
    with tempfile.TemporaryDirectory() as tmp:
        midi, wav = Path(tmp) / "kit.mid", Path(tmp) / "kit.wav"
        midi.write_bytes(kit_midi(program, hits))
        command = ["fluidsynth", "-ni", "-q", "-R", "0", "-C", "0", "-g", "1.0"]
        command += ["-r", str(RATE), "-O", "float", "-F", str(wav), str(soundfont), str(midi)]
        subprocess.run(command, check=True, capture_output=True, timeout=RENDER_TIMEOUT_SECONDS)
        audio, rate = sf.read(wav, dtype="float32", always_2d=True)
    if rate != RATE:
        raise RuntimeError(f"FluidSynth rendered at {rate} Hz, not {RATE}")
    return cut_hits(audio.mean(axis=1), len(hits))


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


def _gm_clips(soundfont: Path) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """name -> clip of every kept GM hit, and the counts of skipped ones."""
    hits = [(note, velocity) for note in NOTES for velocity in VELOCITIES]
    kept: dict[str, np.ndarray] = {}
    shapes: dict[int, list[np.ndarray]] = {velocity: [] for velocity in VELOCITIES}
    counts = {"silent": 0, "duplicate": 0}
    for program, kit in drum_kits(soundfont):
        for (note, velocity), clip in zip(hits, render_kit(program, hits, soundfont), strict=True):
            if rms_db(clip) < SILENCE_DB:
                counts["silent"] += 1
                continue
            shape = clip / np.linalg.norm(clip)
            if is_copy(shape, shapes[velocity]):
                counts["duplicate"] += 1
                continue
            shapes[velocity].append(shape)
            kept[f"gm__{program:03d}-{_slug(kit)}__n{note}_v{velocity}"] = clip
    return kept, counts


def is_copy(shape: np.ndarray, earlier: list[np.ndarray]) -> bool:
    """Whether unit-norm `shape` is within DUPLICATE_DB of a gain times one of `earlier`
    (unit-norm): the residual of the best gain is 1 - correlation^2 of the energy."""
    if not earlier:
        return False
    correlation = np.abs(np.stack(earlier) @ shape).max()
    return bool(10 * np.log10(max(1.0 - correlation**2, 1e-20)) < DUPLICATE_DB)


def _synth_clips() -> dict[str, np.ndarray]:
    from helius.audio.synth import ONESHOT_KINDS, make_oneshot, sound_rng

    clips = {}
    for index in range(SYNTH_PER_KIND * len(ONESHOT_KINDS)):
        kind = ONESHOT_KINDS[index % len(ONESHOT_KINDS)]
        audio, _ = make_oneshot(kind, sound_rng(SYNTH_SEED, "oneshot", index), RATE, HIT_SECONDS)
        clips[f"synth__{kind}_{index:04d}"] = audio
    return clips


def split(names: list[str]) -> list[Clip]:
    """Every UNSEEN_EVERY-th group of each source, by sorted group name, is unseen."""
    clips = []
    for source in ("gm", "synth"):
        mine = sorted(n for n in names if n.startswith(source + "__"))
        groups = sorted({n.rsplit("_v", 1)[0] if source == "gm" else n for n in mine})
        unseen = set(groups[::UNSEEN_EVERY])
        for name in mine:
            group = name.rsplit("_v", 1)[0] if source == "gm" else name
            clips.append(Clip(name + ".wav", group, source, group in unseen))
    return clips


def settings() -> dict:
    """What a set was built with; a cached set with other settings is rebuilt."""
    return {
        "soundfont": str(SOUNDFONT),
        "rate": RATE,
        "hit_seconds": HIT_SECONDS,
        "notes": [NOTES.start, NOTES.stop - 1],
        "velocities": list(VELOCITIES),
        "silence_db": SILENCE_DB,
        "duplicate_db": DUPLICATE_DB,
        "synth_per_kind": SYNTH_PER_KIND,
        "synth_seed": SYNTH_SEED,
        "unseen_every": UNSEEN_EVERY,
    }


def build_set(out_dir: Path, soundfont: Path = SOUNDFONT) -> dict:
    """Render (or reuse) the set in out_dir; returns the contents of its split.json."""
    split_path = out_dir / "split.json"
    if split_path.is_file():
        cached = json.loads(split_path.read_text())
        present = all(
            (out_dir / ("unseen" if c["unseen"] else "train") / c["name"]).is_file()
            for c in cached["clips"]
        )
        if cached.get("settings") == settings() and present:
            return cached
    if not soundfont.is_file() or shutil.which("fluidsynth") is None:
        raise SystemExit(
            "one-shots: needs FluidSynth and the FluidR3 GM soundfont: "
            "apt-get install fluidsynth fluid-soundfont-gm"
        )
    gm, counts = _gm_clips(soundfont)
    audio = {**gm, **_synth_clips()}
    clips = split(list(audio))
    for folder in (out_dir / "train", out_dir / "unseen"):  # a rebuild leaves no stale clip
        if folder.is_dir():
            shutil.rmtree(folder)
    for clip in clips:
        folder = out_dir / ("unseen" if clip.unseen else "train")
        folder.mkdir(parents=True, exist_ok=True)
        part = folder / (clip.name + ".part")
        sf.write(part, audio[clip.name[: -len(".wav")]], RATE, subtype="PCM_16", format="WAV")
        part.replace(folder / clip.name)
    record = {
        "settings": settings(),
        "kits": [f"{program} {name}" for program, name in drum_kits(soundfont)],
        "skipped": counts,
        "counts": {
            f"{split_name}_{source}": sum(
                c.source == source and c.unseen == (split_name == "unseen") for c in clips
            )
            for split_name in ("train", "unseen")
            for source in ("gm", "synth")
        },
        "clips": [asdict(clip) for clip in clips],
    }
    atomic_write_text(split_path, json.dumps(record, indent=1))
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    record = build_set(args.out)
    print(f"{len(record['kits'])} GM kits: {', '.join(record['kits'])}")
    print(f"skipped GM hits: {record['skipped']}")
    print("clips: " + ", ".join(f"{k} {v}" for k, v in record["counts"].items()))


if __name__ == "__main__":
    main()
