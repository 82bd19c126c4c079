"""Benchmark `helius.edit.align.align_pair` against exact pointers on synthetic pairs from music.

Makes --pairs synthetic raw/edit pairs (`helius.edit.synth.synthesize_pairs`, the default
program mix) from up to eight Wesnoth tracks (those the beat tracker can use) cropped to
--max-seconds, then aligns each edit with its raw track (the raw's beat grid from
`track_beats`, as `helius edit align` does) and scores the pointers against the synth's ground
truth: shares of edited frames exact, within 1 and within 5 frames, the length error, the
share of edit ops that agree, and the alignment's own quality score. A pair counts as valid
when at least 95 % of its frames are within 1 frame.

Besides the edit as written ("clean"), each edit is aligned in two harder forms a real edit
may take: "mastered" (a tone change, soft clipping and noise 45 dB under the music) and
"shifted" (the edit delayed by 100 samples, so no join falls on a frame boundary). Prints a
table per condition and writes bench/results/edit_align-<date>-<host>.json with the load
average at the start and the end.

    python bench/edit_align.py [--music DIR] [--pairs 12] [--max-seconds 75] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from record import write_result  # bench/ is on sys.path

BENCH_DIR = Path(__file__).resolve().parent
MUSIC = Path("/usr/share/games/wesnoth/1.16/data/core/music")
TRACKS = (
    "battle.ogg",
    "knalgan_theme.ogg",
    "elvish-theme.ogg",
    "heroes_rite.ogg",
    "northerners.ogg",
    "loyalists.ogg",
    "the_city_falls.ogg",  # spares, for tracks the beat tracker cannot use
    "battle-epic.ogg",
)
VALID_WITHIN_1 = 0.95
SHIFT_SAMPLES = 100
CONDITIONS = ("clean", "mastered", "shifted")


def degrade(edit: np.ndarray, condition: str, rate: int, seed: int) -> np.ndarray:
    """The edit as `condition` leaves it (see the module doc)."""
    if condition == "clean":
        return edit
    if condition == "shifted":
        return np.concatenate([np.zeros(SHIFT_SAMPLES, np.float32), edit[:-SHIFT_SAMPLES]])
    from scipy.signal import butter, sosfilt

    brighter = edit + 0.5 * sosfilt(butter(2, 3000, "highpass", fs=rate, output="sos"), edit)
    clipped = np.tanh(2.0 * brighter) / 2.0
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(len(edit)) * np.std(clipped) * 10 ** (-45 / 20)
    return (clipped + noise).astype(np.float32)


def make_pairs(args: argparse.Namespace, workdir: Path):
    """Synthesize the pairs into workdir/pairs from the chosen tracks (linked into one folder)."""
    from helius.edit.programs import SynthSettings
    from helius.edit.synth import synthesize_pairs

    music = workdir / "music"
    music.mkdir(parents=True, exist_ok=True)
    for name in args.tracks:
        link = music / name
        if not link.exists():
            link.symlink_to(args.music / name)
    settings = SynthSettings(max_seconds=args.max_seconds)
    return synthesize_pairs(music, workdir / "pairs", args.pairs, settings, args.seed)


def run(args: argparse.Namespace, workdir: Path) -> dict:
    from helius.audio import io
    from helius.audio.beats import track_beats
    from helius.edit.align import align_pair, score_alignment
    from helius.errors import HeliusError

    started = time.perf_counter()
    report = make_pairs(args, workdir)
    synth_seconds = time.perf_counter() - started
    root = workdir / "pairs"
    rows = []
    for pair in report.pairs:
        raw = io.load(root / "input" / f"{pair.name}_raw.wav", 22050)[0][0]
        edit = io.load(root / "desired_output" / f"{pair.name}_edit.wav", 22050)[0][0]
        truth = np.load(root / "pointer_sequences" / f"{pair.name}.npz")
        try:
            grid = track_beats(raw, 22050)
        except HeliusError:
            grid = None  # as `helius edit align` does: jumps cost the same everywhere
        for condition in CONDITIONS:
            start = time.perf_counter()
            alignment = align_pair(raw, degrade(edit, condition, 22050, pair.seed), grid=grid)
            seconds = time.perf_counter() - start
            score = score_alignment(alignment.pointers, truth["pointers"])
            true_ops = truth["ops"][: len(alignment.ops)]
            rows.append(
                {
                    "pair": pair.name,
                    "kind": pair.kind,
                    "condition": condition,
                    **score,
                    "quality": alignment.quality,
                    "mean_similarity": alignment.mean_similarity,
                    "jumps": alignment.jumps,
                    "true_jumps": pair.jumps,
                    "ops_agree": float(np.mean(alignment.ops[: len(true_ops)] == true_ops)),
                    "gain_error": float(np.mean(np.abs(alignment.gains - truth["gains"])))
                    if len(alignment.gains) == len(truth["gains"])
                    else None,
                    "align_seconds": seconds,
                    "edit_seconds": pair.edit_seconds,
                }
            )
    return {"rows": rows, "synth_seconds": synth_seconds, "skipped_tracks": report.skipped}


def summarise(rows: list[dict]) -> dict:
    """Means per condition and the share of valid pairs."""
    means = {}
    for condition in CONDITIONS:
        chosen = [row for row in rows if row["condition"] == condition]
        means[condition] = {
            key: float(np.mean([row[key] for row in chosen]))
            for key in ("exact", "within_1", "within_5", "quality", "ops_agree", "align_seconds")
        }
        means[condition]["abs_length_error"] = float(
            np.mean([abs(row["length_error"]) for row in chosen])
        )
        means[condition]["valid_pairs"] = float(
            np.mean([row["within_1"] >= VALID_WITHIN_1 for row in chosen])
        )
    return means


def print_table(rows: list[dict], means: dict) -> None:
    for condition in CONDITIONS:
        print(f"\n{condition}:")
        print(f"{'pair':28s} {'kind':11s} {'within1':>8s} {'within5':>8s} {'quality':>8s} jumps")
        for row in (row for row in rows if row["condition"] == condition):
            print(
                f"{row['pair']:28s} {row['kind']:11s} {row['within_1']:8.4f} "
                f"{row['within_5']:8.4f} {row['quality']:8.4f} {row['jumps']}/{row['true_jumps']}"
            )
        mean = means[condition]
        print(
            f"{'mean':28s} {'':11s} {mean['within_1']:8.4f} {mean['within_5']:8.4f} "
            f"{mean['quality']:8.4f}  exact {mean['exact']:.4f}, ops agree "
            f"{mean['ops_agree']:.4f}, valid pairs {mean['valid_pairs']:.0%}, "
            f"{mean['align_seconds']:.2f} s per pair"
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--music", type=Path, default=MUSIC)
    parser.add_argument("--tracks", nargs="+", default=list(TRACKS))
    parser.add_argument("--pairs", type=int, default=12)
    parser.add_argument("--max-seconds", type=float, default=75.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="make the pairs here and keep them")
    parser.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_start = os.getloadavg()  # other work on the machine skews the timings
    if args.keep is not None:
        result = run(args, args.keep)
    else:
        with tempfile.TemporaryDirectory() as workdir:
            result = run(args, Path(workdir))
    means = summarise(result["rows"])
    print_table(result["rows"], means)
    path = write_result(
        args.results_dir,
        "edit_align",
        load_start,
        tracks=args.tracks,
        pairs=args.pairs,
        max_seconds=args.max_seconds,
        seed=args.seed,
        valid_within_1=VALID_WITHIN_1,
        synth_seconds=result["synth_seconds"],
        skipped_tracks=[[str(path), reason] for path, reason in result["skipped_tracks"]],
        means=means,
        rows=result["rows"],
    )
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
