"""Benchmark `helius prep`: throughput (audio-seconds per wall-second) and peak memory, vs ffmpeg.

Generates a corpus of 3-minute 44.1 kHz stereo songs (MP3, FLAC, WAV in turn) from the
built-in synthesizer (cached in bench/corpus/), then times, each in a fresh process:
  * helius prep with 1 worker and with all workers (to 48 kHz mono 2 s segments),
  * the ffmpeg command line doing the same decode + resample + segment, one file at a time
    and with as many ffmpeg processes as cores (when ffmpeg is installed),
  * peak RSS of the largest process for 10 and 60 minutes of input (1 worker).
Prints a table and writes bench/results/prep-<date>-<host>.json.

    python bench/prep.py [--minutes 30] [--rss-minutes 10 60]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from helius.audio import io
from helius.audio.synth import TEXTURE_KINDS, make_texture
from helius.data.parallel import default_workers

BENCH_DIR = Path(__file__).resolve().parent
SONG_SECONDS = 180
SOURCE_RATE = 44100
FORMATS = ("mp3", "flac", "wav")
TARGET_PER_WORKER = 300.0  # x real time


@dataclass(frozen=True)
class Corpus:
    """Generated songs cached in `folder/songs`, and folders of symlinks to the first N."""

    folder: Path
    song_seconds: int = SONG_SECONDS

    def songs_for(self, minutes: float) -> int:
        return max(1, math.ceil(minutes * 60 / self.song_seconds))

    def seconds_for(self, minutes: float) -> int:
        return self.songs_for(minutes) * self.song_seconds

    def song(self, index: int) -> np.ndarray:
        """A stereo song: 10-second textures in turn, each panned a little differently."""
        rng = np.random.default_rng([7, index])
        parts = []
        for part in range(max(1, self.song_seconds // 10)):
            kind = TEXTURE_KINDS[(index + part) % len(TEXTURE_KINDS)]
            mono, _ = make_texture(kind, rng, sample_rate=SOURCE_RATE, duration_seconds=10.0)
            pan = rng.uniform(0.3, 0.7)
            parts.append(np.stack([mono * (1 - pan) * 1.4, mono * pan * 1.4]))
        return np.concatenate(parts, axis=1).astype(np.float32)

    def subset(self, minutes: float) -> Path:
        """A folder of symlinks to the first songs making up `minutes` of audio."""
        songs = self.folder / f"songs-{self.song_seconds}s"
        songs.mkdir(parents=True, exist_ok=True)
        paths = []
        for index in range(self.songs_for(minutes)):
            path = songs / f"song{index:03d}.{FORMATS[index % len(FORMATS)]}"
            if not path.exists():
                io.save(path, self.song(index), SOURCE_RATE)
            paths.append(path)
        folder = self.folder / f"{minutes:g}min-{self.song_seconds}s"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for path in paths:
            (folder / path.name).symlink_to(path)
        return folder


def measure(command: list[str]) -> dict[str, float]:
    """Run a command in a fresh process: wall seconds and peak RSS of its largest process."""
    probe = (
        "import resource, subprocess, sys, time\n"
        "start = time.perf_counter()\n"
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)\n"
        "wall = time.perf_counter() - start\n"
        "print(wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", probe, *command], check=True, capture_output=True, text=True
    ).stdout.split()
    return {"seconds": float(output[0]), "peak_rss_mb": float(output[1]) / 1024}


def helius_prep(folder: Path, workers: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as out:
        return measure(
            [
                sys.executable,
                "-m",
                "helius",
                "prep",
                "--input_dir",
                str(folder),
                "--output_dir",
                out,
                "--segment_length",
                "2.0",
                "--sample_rate",
                "48000",
                "--workers",
                str(workers),
                "--quiet",
            ]
        )


def ffmpeg_one(path: Path, out: Path) -> None:
    target = out / path.stem
    target.mkdir()
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-i",
            str(path),
            "-ac",
            "1",
            "-ar",
            "48000",
            "-af",
            "aresample=resampler=soxr",
            "-f",
            "segment",
            "-segment_time",
            "2",
            "-c:a",
            "pcm_s16le",
            str(target / "%05d.wav"),
        ],
        check=True,
    )


def ffmpeg_prep(folder: Path, processes: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as out:
        files = sorted(folder.iterdir())
        start = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(processes) as pool:
            list(pool.map(lambda path: ffmpeg_one(path, Path(out)), files))
        return {"seconds": time.perf_counter() - start}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30, help="corpus for throughput")
    parser.add_argument(
        "--rss-minutes",
        type=float,
        nargs="+",
        default=[10, 60],
        help="corpus sizes whose peak memory is compared",
    )
    parser.add_argument(
        "--corpus-dir",
        type=Path,
        default=BENCH_DIR / "corpus",
        help="where the generated songs are cached",
    )
    parser.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")
    parser.add_argument(
        "--song-seconds",
        type=int,
        default=SONG_SECONDS,
        help="length of each generated song (a multiple of 10)",
    )
    args = parser.parse_args(argv)
    cores = default_workers()
    corpus = Corpus(args.corpus_dir, args.song_seconds)
    folder = corpus.subset(args.minutes)
    audio_seconds = corpus.seconds_for(args.minutes)
    rows = []
    for workers in sorted({1, cores}):
        result = helius_prep(folder, workers)
        speed = audio_seconds / result["seconds"]
        rows.append(
            {
                "what": f"helius prep, {workers} worker(s)",
                "minutes": audio_seconds / 60,
                **result,
                "x_realtime": speed,
                "x_realtime_per_worker": speed / workers,
            }
        )
    if shutil.which("ffmpeg"):
        for processes in sorted({1, cores}):
            result = ffmpeg_prep(folder, processes)
            rows.append(
                {
                    "what": f"ffmpeg CLI, {processes} process(es)",
                    "minutes": audio_seconds / 60,
                    **result,
                    "x_realtime": audio_seconds / result["seconds"],
                    "x_realtime_per_worker": audio_seconds / result["seconds"] / processes,
                }
            )
    for minutes in args.rss_minutes:
        result = helius_prep(corpus.subset(minutes), 1)
        seconds = corpus.seconds_for(minutes)
        rows.append(
            {
                "what": "helius prep, 1 worker (memory)",
                "minutes": seconds / 60,
                **result,
                "x_realtime": seconds / result["seconds"],
                "x_realtime_per_worker": seconds / result["seconds"],
            }
        )

    print(f"\nprep benchmark on {platform.node()} ({cores} cores, {platform.processor() or '?'})")
    print(
        f"| {'run':<34} | {'audio min':>9} | {'wall s':>7} | {'x real time':>11} | "
        f"{'x RT / worker':>13} | {'peak RSS MB':>11} |"
    )
    print(f"|{'-' * 36}|{'-' * 11}|{'-' * 9}|{'-' * 13}|{'-' * 15}|{'-' * 13}|")
    for row in rows:
        rss = f"{row['peak_rss_mb']:.0f}" if "peak_rss_mb" in row else "-"
        print(
            f"| {row['what']:<34} | {row['minutes']:>9.0f} | {row['seconds']:>7.2f} | "
            f"{row['x_realtime']:>11.0f} | {row['x_realtime_per_worker']:>13.0f} | {rss:>11} |"
        )
    ours = {row["what"]: row for row in rows}
    summary = {
        "target_x_realtime_per_worker": TARGET_PER_WORKER,
        "per_worker_1": ours["helius prep, 1 worker(s)"]["x_realtime_per_worker"],
    }
    for count in sorted({1, cores}):
        helius_row = ours[f"helius prep, {count} worker(s)"]
        ffmpeg_row = ours.get(f"ffmpeg CLI, {count} process(es)")
        if ffmpeg_row:
            ratio = helius_row["x_realtime"] / ffmpeg_row["x_realtime"]
            summary[f"speed_vs_ffmpeg_{count}_process"] = ratio
            print(f"helius / ffmpeg speed, {count} process(es) each: {ratio:.2f} (target >= 1)")
    rss = [row["peak_rss_mb"] for row in rows if "memory" in row["what"]]
    summary["peak_rss_mb_by_minutes"] = dict(zip(map(str, args.rss_minutes), rss, strict=True))
    print(
        f"target: >= {TARGET_PER_WORKER:.0f}x real time per worker; measured "
        f"{summary['per_worker_1']:.0f}x with 1 worker"
    )
    results = args.results_dir
    results.mkdir(parents=True, exist_ok=True)
    stamp = datetime.date.today().isoformat()
    path = results / f"prep-{stamp}-{platform.node()}.json"
    path.write_text(
        json.dumps(
            {
                "machine": {
                    "host": platform.node(),
                    "cores": cores,
                    "python": platform.python_version(),
                },
                "rows": rows,
                "summary": summary,
            },
            indent=2,
        )
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
