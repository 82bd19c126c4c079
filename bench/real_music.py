"""A real-music evaluation set built from packages: music21 scores rendered by FluidSynth, and
the Wesnoth soundtrack (Debian's `wesnoth-1.16-music`), split by piece into train and unseen.

Nothing is downloaded: the scores ship inside the music21 wheel, the soundfont and the game
music come from Debian packages (`apt-get install fluidsynth fluid-soundfont-gm
wesnoth-1.16-music`; `pip install music21`). The set is an allowlist: the composers in
CORPUS_COMPOSERS and the Wesnoth soundtrack, nothing else, so music kept for independent
evaluation never enters it.

    python bench/real_music.py --out /tmp/real_music     # render and list the split

Each piece becomes one 44.1 kHz mono WAV (`<group>/<name>.wav`); `split.json` lists which
pieces are for training and which are unseen (held out by name, never trained on).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
WESNOTH_MUSIC = Path("/usr/share/games/wesnoth/1.16/data/core/music")
RENDER_RATE = 44100
# music21 corpus composers with multi-part classical scores (string quartets, piano, songs):
# the only scores used (an allowlist).
CORPUS_COMPOSERS = (
    "beethoven",
    "mozart",
    "haydn",
    "schumann_robert",
    "schumann_clara",
    "schubert",
    "chopin",
    "joplin",
    "handel",
    "corelli",
    "verdi",
    "beach",
    "weber",
)
# Unseen pieces: fixed by name so every run tests on the same music.
UNSEEN_SCORES = (
    "beethoven/opus59no3/movement2.mxl",
    "haydn/opus74no1/movement2.mxl",
    "joplin/maple_leaf_rag.mxl",
    "mozart/k155/movement1.mxl",
)
UNSEEN_WESNOTH = ("knalgan_theme.ogg", "elvish-theme.ogg", "revelation.ogg")
MAX_PIECE_SECONDS = 240.0
MAX_MEASURES = 120
RENDER_TIMEOUT_SECONDS = 300


@dataclass(frozen=True)
class Piece:
    name: str  # group/relative name, unique
    path: Path  # rendered or decoded mono WAV
    seconds: float
    unseen: bool


def corpus_scores() -> list[tuple[str, Path]]:
    """(name, path) of the music21 corpus scores of CORPUS_COMPOSERS, sorted."""
    try:
        from music21 import corpus
    except ImportError as error:
        raise SystemExit("real music: pip install music21 (its corpus ships the scores)") from error
    scores = []
    for composer in CORPUS_COMPOSERS:
        for path in corpus.getComposer(composer):
            path = Path(path)
            if path.suffix not in (".mxl", ".xml", ".musicxml", ".krn"):
                continue
            name = str(path).split("/corpus/", 1)[1]
            if path.suffix == ".krn" and path.with_suffix(".mxl").exists():
                continue  # the same movement as MusicXML
            scores.append((name, path))
    return sorted(scores)


def _render_score(name: str, path: Path, out: Path) -> Path | None:
    """MusicXML/Humdrum -> MIDI (music21) -> 44.1 kHz mono WAV (FluidSynth, FluidR3 GM)."""
    from music21 import bar, converter, repeat

    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        midi = Path(tmp) / "piece.mid"
        wav = Path(tmp) / "piece.wav"
        try:
            score = converter.parse(str(path))
            # The opening bars are enough (pieces are cut at MAX_PIECE_SECONDS anyway), and a
            # shorter score renders in seconds instead of minutes.
            opening = score.measures(1, MAX_MEASURES)
            try:
                opening.write("midi", fp=str(midi))
            except repeat.ExpanderException:
                # Repeats that music21 cannot expand (often cut by the bar limit): play the
                # bars as written, once.
                for mark in list(opening.recurse().getElementsByClass(bar.Repeat)):
                    mark.activeSite.remove(mark)
                opening.write("midi", fp=str(midi))
        except Exception as error:  # a score music21 cannot read or expand: reported, skipped
            print(f"  skip {name}: music21 cannot render it ({error})", file=sys.stderr)
            return None
        try:
            subprocess.run(
                [
                    "fluidsynth",
                    "-ni",
                    "-q",
                    "-g",
                    "0.6",
                    "-r",
                    str(RENDER_RATE),
                    "-F",
                    str(wav),
                    str(SOUNDFONT),
                    str(midi),
                ],
                check=True,
                capture_output=True,
                timeout=RENDER_TIMEOUT_SECONDS,
            )
        except subprocess.TimeoutExpired:
            print(f"  skip {name}: FluidSynth did not finish in time", file=sys.stderr)
            return None
        audio, rate = sf.read(wav, dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)[: int(MAX_PIECE_SECONDS * rate)]
    peak = float(np.abs(mono).max())
    if peak < 1e-4:
        print(f"  skip {name}: rendered silent", file=sys.stderr)
        return None
    mono *= 0.7 / peak  # the same peak level for every render
    tmp_out = out.with_suffix(".part.wav")
    sf.write(tmp_out, mono, rate, subtype="PCM_16")
    tmp_out.replace(out)
    return out


def _decode_wesnoth(path: Path, out: Path) -> Path:
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
        mono = audio.mean(axis=1)[: int(MAX_PIECE_SECONDS * rate)]
        tmp_out = out.with_suffix(".part.wav")
        sf.write(tmp_out, mono, rate, subtype="PCM_16")
        tmp_out.replace(out)
    return out


def build_set(out_dir: Path, wesnoth: bool = True, workers: int = 2) -> list[Piece]:
    """Render (or reuse) every piece into out_dir; returns them with their unseen flag."""
    if not SOUNDFONT.is_file() or shutil.which("fluidsynth") is None:
        raise SystemExit(
            "real music: needs FluidSynth and the FluidR3 GM soundfont: "
            "apt-get install fluidsynth fluid-soundfont-gm"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = []
    for name, path in corpus_scores():
        target = out_dir / "classical" / (name.replace("/", "__").rsplit(".", 1)[0] + ".wav")
        jobs.append((name, path, target, name in UNSEEN_SCORES))
    # music21 is pure Python: processes, not threads, render in parallel.
    with ProcessPoolExecutor(workers) as pool:
        rendered = list(pool.map(_render_score, *zip(*(job[:3] for job in jobs), strict=True)))
    pieces = [
        Piece(f"classical/{name}", wav, sf.info(wav).duration, unseen)
        for (name, _, _, unseen), wav in zip(jobs, rendered, strict=True)
        if wav is not None
    ]
    if wesnoth:
        if not WESNOTH_MUSIC.is_dir():
            raise SystemExit(
                "real music: apt-get install wesnoth-1.16-music (or pass --no-wesnoth)"
            )
        for path in sorted(WESNOTH_MUSIC.glob("*.ogg")):
            wav = _decode_wesnoth(path, out_dir / "wesnoth" / (path.stem + ".wav"))
            pieces.append(
                Piece(
                    f"wesnoth/{path.name}", wav, sf.info(wav).duration, path.name in UNSEEN_WESNOTH
                )
            )
    split = {
        "train": [piece.name for piece in pieces if not piece.unseen],
        "unseen": [piece.name for piece in pieces if piece.unseen],
        "train_minutes": sum(p.seconds for p in pieces if not p.unseen) / 60,
        "unseen_minutes": sum(p.seconds for p in pieces if p.unseen) / 60,
    }
    (out_dir / "split.json").write_text(json.dumps(split, indent=1))
    return pieces


def link_split(pieces: list[Piece], train_dir: Path, unseen_dir: Path) -> None:
    """Symlink the training pieces into train_dir and the unseen ones into unseen_dir."""
    for folder in (train_dir, unseen_dir):
        folder.mkdir(parents=True, exist_ok=True)
    for piece in pieces:
        folder = unseen_dir if piece.unseen else train_dir
        link = folder / piece.name.replace("/", "__").replace(".ogg", "").replace(".mxl", "")
        link = link.with_suffix(".wav") if link.suffix != ".wav" else link
        if not link.exists():
            link.symlink_to(piece.path.resolve())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--no-wesnoth", action="store_true")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    pieces = build_set(args.out, wesnoth=not args.no_wesnoth, workers=args.workers)
    train = [p for p in pieces if not p.unseen]
    unseen = [p for p in pieces if p.unseen]
    print(f"{len(train)} training pieces, {sum(p.seconds for p in train) / 60:.1f} min")
    print(f"{len(unseen)} unseen pieces, {sum(p.seconds for p in unseen) / 60:.1f} min:")
    for piece in unseen:
        print(f"  {piece.name} ({piece.seconds:.0f} s)")


if __name__ == "__main__":
    main()
