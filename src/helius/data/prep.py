"""`helius prep`: an audio folder becomes segment WAVs, train/val indexes, a manifest and a report.

Layout of `output_dir`:
  segments/<name>-<hash>/00000.wav   one folder per source file, segment N starts at N * length
  train_index.txt, val_index.txt     segment paths relative to output_dir, one per line
  test_index.txt                     the same, when the data set names a test split (MAESTRO)
  manifest.jsonl                     one record per segment (source, offset, RMS dB, tags, split)
  prep_report.json                   what was done, and every skipped file with its reason
  prep_state.json                    per source: size, mtime and results, for incremental re-runs

The split is by source file, so segments of one recording never sit on both sides.
Nothing inside `input_dir` is written; an `output_dir` inside `input_dir` is not walked.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helius import progress
from helius.audio.io import AUDIO_EXTENSIONS
from helius.data.parallel import parallel_map
from helius.data.segment import FileJob, PrepSettings, segment_file
from helius.errors import DataError
from helius.files import atomic_write_text

STATE_VERSION = 1
STATE_SAVE_EVERY = 50  # files; bounds the work lost to a crash or Ctrl-C


@dataclass
class PrepResult:
    output_dir: Path
    files_found: int = 0
    files_processed: int = 0
    files_unchanged: int = 0
    files_ok: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    segments_train: int = 0
    segments_val: int = 0
    segments_test: int = 0  # only data sets with their own test split (MAESTRO) have any
    segments_silent_dropped: int = 0
    one_shots_padded: int = 0  # one-shot mode: files shorter than a clip, padded with silence
    one_shots_cut: int = 0  # one-shot mode: files longer than a clip, cut with a fade
    audio_seconds: float = 0.0
    audio_seconds_this_run: float = 0.0
    elapsed_seconds: float = 0.0

    @property
    def report_path(self) -> Path:
        return self.output_dir / "prep_report.json"

    def summary(self) -> str:
        """One line for people; the report has the details."""
        line = (
            f"prepared {self.files_ok} of {self.files_found} audio files "
            f"({self.files_unchanged} unchanged, {self.files_processed} processed): "
            f"{self.segments_train + self.segments_val + self.segments_test} segments "
            f"({self.segments_train} train / {self.segments_val} val"
            + (f" / {self.segments_test} test" if self.segments_test else "")
            + "), "
            f"{self.audio_seconds / 3600:.2f} h of audio in {self.output_dir}"
        )
        if self.one_shots_padded or self.one_shots_cut:
            line += (
                f"\none clip per file: {self.one_shots_padded} shorter files padded with "
                f"silence, {self.one_shots_cut} longer ones cut with a fade"
            )
        if self.failed:
            first = "; ".join(f"{item['file']}: {item['reason']}" for item in self.failed[:3])
            more = f" and {len(self.failed) - 3} more" if len(self.failed) > 3 else ""
            line += f"\nskipped {len(self.failed)} files ({first}{more}); see {self.report_path}"
        return line


def prepare(
    input_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    settings: PrepSettings | None = None,
    val_fraction: float = 0.02,
    workers: int | None = None,
    overwrite: bool = False,
    tags_for: Callable[[str], dict[str, str]] | None = None,
    split_for: Callable[[str], str | None] | None = None,
) -> PrepResult:
    """Prepare `input_dir` into `output_dir` (see the module docstring); returns what was done.

    A data set's own layout can label its sources (by path relative to input_dir): `tags_for`
    adds tags to the manifest (e.g. GTZAN's genre folders), `split_for` fixes a source's split
    ("train", "val", or "test", which goes to test_index.txt; None: the hash split), e.g.
    MAESTRO's CSV splits.

    Raises DataError when nothing usable was found (after writing the report).
    """
    settings = settings or PrepSettings()
    input_dir, output_dir = Path(input_dir).resolve(), Path(output_dir).resolve()
    _check_dirs(input_dir, output_dir, val_fraction)
    started = time.perf_counter()
    output_dir.mkdir(parents=True, exist_ok=True)
    state = _load_state(output_dir, settings, overwrite)
    sources, ignored = find_audio_files(input_dir, exclude=output_dir)
    result = PrepResult(output_dir, files_found=len(sources), ignored=ignored)
    _forget_removed(state, {relpath for relpath, _ in sources}, output_dir)

    jobs = []
    for relpath, path in sources:
        stat = path.stat()
        known = state["files"].get(relpath)
        if (
            known
            and known["ok"]
            and known["size"] == stat.st_size
            and (known["mtime_ns"] == stat.st_mtime_ns)
        ):
            result.files_unchanged += 1
            continue
        state["files"][relpath] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "ok": False}
        jobs.append(
            FileJob(
                path,
                relpath,
                output_dir / "segments" / segment_dir_name(relpath),
                output_dir,
                settings,
            )
        )

    bar = progress.bar(total=len(jobs), desc="prep", unit="file")
    for done, file_result in enumerate(parallel_map(segment_file, jobs, workers), start=1):
        entry = state["files"][file_result.relpath]
        entry.update(dataclasses.asdict(file_result))
        result.files_processed += 1
        result.audio_seconds_this_run += file_result.audio_seconds
        bar.update(1)
        bar.set_postfix_str(f"{result.audio_seconds_this_run / 3600:.2f} h audio", refresh=False)
        if done % STATE_SAVE_EVERY == 0:
            _save_state(output_dir, state)
    bar.close()
    _save_state(output_dir, state)

    _write_outputs(state, output_dir, val_fraction, result, tags_for, split_for)
    result.elapsed_seconds = time.perf_counter() - started
    _write_report(result, input_dir, settings, val_fraction)
    if result.files_ok == 0:
        raise DataError(
            f"no usable audio in {input_dir}: {len(result.failed)} files failed and "
            f"{len(ignored)} were not audio; reasons in {result.report_path}. "
            "Check the folder with `helius validate-data`."
        )
    return result


def find_audio_files(
    root: Path, exclude: Path | None = None
) -> tuple[list[tuple[str, Path]], list[str]]:
    """Audio files under `root` (sorted, relative path first) and the other files seen.

    Hidden files and folders are skipped, and so is `exclude` (an output folder inside root).
    """
    found, ignored = [], []
    for folder, subfolders, files in os.walk(root):
        here = Path(folder)
        subfolders[:] = sorted(
            name
            for name in subfolders
            if not name.startswith(".") and (exclude is None or (here / name).resolve() != exclude)
        )
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = here / name
            relpath = path.relative_to(root).as_posix()
            (found if path.suffix.lower() in AUDIO_EXTENSIONS else ignored).append(relpath)
    return [(relpath, root / relpath) for relpath in sorted(found)], sorted(ignored)


def segment_dir_name(relpath: str) -> str:
    """A folder name that is readable, filesystem-safe and unique per source path."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(relpath).stem).strip("._")[:40] or "audio"
    return f"{stem}-{_digest(relpath)[:10]}"


def split_sources(relpaths: Iterable[str], val_fraction: float) -> set[str]:
    """The sources that go to validation: deterministic and stable as files are added.

    A source is in validation when its path hash falls below `val_fraction`; with two or more
    sources (and a non-zero fraction) at least one is validation and at least one training.
    """
    ranked = sorted(relpaths, key=_digest)
    if len(ranked) < 2 or val_fraction <= 0:
        return set()
    val = {relpath for relpath in ranked if int(_digest(relpath)[:15], 16) / 16**15 < val_fraction}
    if not val:
        val = {ranked[0]}
    if len(val) == len(ranked):
        val.discard(ranked[-1])
    return val


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _check_dirs(input_dir: Path, output_dir: Path, val_fraction: float) -> None:
    if not input_dir.is_dir():
        raise DataError(f"--input_dir {input_dir} is not a folder")
    if output_dir == input_dir:
        raise DataError("--output_dir must differ from --input_dir (input files are never touched)")
    if input_dir.is_relative_to(output_dir):
        raise DataError(
            f"--input_dir {input_dir} lies inside --output_dir {output_dir}; "
            "choose an output folder outside the input"
        )
    if not 0 <= val_fraction < 1:
        raise DataError(f"--val_fraction must be in [0, 1), got {val_fraction}")


def _load_state(output_dir: Path, settings: PrepSettings, overwrite: bool) -> dict[str, Any]:
    path = output_dir / "prep_state.json"
    fresh = {"version": STATE_VERSION, "settings": dataclasses.asdict(settings), "files": {}}
    for leftover in (output_dir / "segments").glob(".*.partial"):
        shutil.rmtree(leftover, ignore_errors=True)  # from an interrupted run
    if overwrite or not path.exists():
        if overwrite:
            shutil.rmtree(output_dir / "segments", ignore_errors=True)
        return fresh
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return fresh
    if state.get("version") != STATE_VERSION:
        return fresh
    if state.get("settings") != fresh["settings"]:
        raise DataError(
            f"{output_dir} was prepared with other settings ({state.get('settings')}); "
            "re-run with --overwrite to redo it, or choose another --output_dir"
        )
    return state


def _save_state(output_dir: Path, state: dict[str, Any]) -> None:
    atomic_write_text(output_dir / "prep_state.json", json.dumps(state))


def _forget_removed(state: dict[str, Any], present: set[str], output_dir: Path) -> None:
    """Sources deleted from the input lose their segments, so the index stays truthful."""
    for relpath in [known for known in state["files"] if known not in present]:
        shutil.rmtree(output_dir / "segments" / segment_dir_name(relpath), ignore_errors=True)
        del state["files"][relpath]


def _write_outputs(
    state: dict[str, Any],
    output_dir: Path,
    val_fraction: float,
    result: PrepResult,
    tags_for: Callable[[str], dict[str, str]] | None,
    split_for: Callable[[str], str | None] | None,
) -> None:
    usable = {relpath: entry for relpath, entry in state["files"].items() if entry["ok"]}
    fixed = {relpath: split_for(relpath) for relpath in usable} if split_for else {}
    unknown = {split for split in fixed.values() if split not in (None, "train", "val", "test")}
    if unknown:
        raise ValueError(f"split_for gave {sorted(unknown)}; splits are train, val and test")
    val = split_sources([r for r in usable if fixed.get(r) is None], val_fraction)
    lines: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    manifest = []
    for relpath in sorted(usable):
        entry = usable[relpath]
        split = fixed.get(relpath) or ("val" if relpath in val else "train")
        tags = {**entry["tags"], **(tags_for(relpath) if tags_for else {})}
        result.audio_seconds += entry["audio_seconds"]
        result.segments_silent_dropped += entry["silent_segments"]
        result.one_shots_padded += entry.get("one_shot") == "padded"
        result.one_shots_cut += entry.get("one_shot") == "cut"
        for segment in entry["segments"]:
            lines[split].append(segment["segment"])
            manifest.append(
                json.dumps(
                    {**segment, "source": relpath, "split": split, "tags": tags},
                    ensure_ascii=False,
                )
            )
    result.files_ok = len(usable)
    result.segments_train, result.segments_val = len(lines["train"]), len(lines["val"])
    result.segments_test = len(lines["test"])
    result.failed = [
        {"file": relpath, "reason": entry.get("reason", "unknown")}
        for relpath, entry in sorted(state["files"].items())
        if not entry["ok"]
    ]
    for split, paths in lines.items():
        if split == "test" and not paths and not (output_dir / "test_index.txt").exists():
            continue  # only a data set with its own test split has a test index
        atomic_write_text(output_dir / f"{split}_index.txt", "".join(p + "\n" for p in paths))
    atomic_write_text(output_dir / "manifest.jsonl", "".join(m + "\n" for m in manifest))


def _write_report(
    result: PrepResult, input_dir: Path, settings: PrepSettings, val_fraction: float
) -> None:
    report = {
        "input_dir": str(input_dir),
        "output_dir": str(result.output_dir),
        "settings": {**dataclasses.asdict(settings), "val_fraction": val_fraction},
        "files_found": result.files_found,
        "files_processed": result.files_processed,
        "files_unchanged": result.files_unchanged,
        "files_ok": result.files_ok,
        "files_failed": result.failed,
        "files_ignored": result.ignored,
        "segments_train": result.segments_train,
        "segments_val": result.segments_val,
        "segments_silent_dropped": result.segments_silent_dropped,
        "one_shots_padded": result.one_shots_padded,
        "one_shots_cut": result.one_shots_cut,
        "hours_of_audio": round(result.audio_seconds / 3600, 4),
        "elapsed_seconds": round(result.elapsed_seconds, 3),
    }
    atomic_write_text(result.report_path, json.dumps(report, indent=2, ensure_ascii=False))
