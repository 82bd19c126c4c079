"""The on-disk layouts of MAESTRO v3 and GTZAN: checks that a copy is whole, and file listings.

`verify_layout` is what `download` runs before it calls a data set ready (and on every later
run, instead of downloading again); `maestro_files` and `gtzan_files` are what preprocessing
reads. Each error names the folder and the files that are missing.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from helius.errors import ConfigError, DataError

__all__ = [
    "GTZAN_GENRES",
    "MAESTRO_COLUMNS",
    "MAESTRO_SPLITS",
    "gtzan_files",
    "maestro_files",
    "verify_layout",
]

MAESTRO_CSV = "maestro-v3.0.0.csv"
MAESTRO_JSON = "maestro-v3.0.0.json"
MAESTRO_COLUMNS = (
    "canonical_composer",
    "canonical_title",
    "split",
    "year",
    "midi_filename",
    "audio_filename",
    "duration",
)
MAESTRO_SPLITS = ("train", "validation", "test")
GTZAN_GENRES = (
    "blues",
    "classical",
    "country",
    "disco",
    "hiphop",
    "jazz",
    "metal",
    "pop",
    "reggae",
    "rock",
)
# The common mirror's archive holds .au files; converted copies hold .wav.
GTZAN_EXTENSIONS = (".wav", ".au")
_EXAMPLES = 5  # missing files named in an error; the rest are only counted


def _missing_error(what: str, root: Path, missing: list[str], total: int) -> DataError:
    shown = ", ".join(missing[:_EXAMPLES]) + (", ..." if len(missing) > _EXAMPLES else "")
    return DataError(
        f"{len(missing)} of {total} {what} listed in {root / MAESTRO_CSV} are missing under "
        f"{root} (e.g. {shown}). The copy is incomplete: delete {root} and rerun the download "
        "to extract it again, or put the missing files back."
    )


def _listed(root: Path, name: str) -> Path:
    # The CSV is data: a listed path that would leave the data set's folder is refused.
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if not parts or parts[0] == "/" or ".." in parts:
        raise DataError(f"{root / MAESTRO_CSV} lists {name!r}, which is not a path inside {root}")
    return root.joinpath(*parts)


def _maestro_rows(root: Path) -> list[dict[str, str]]:
    path = root / MAESTRO_CSV
    if not path.is_file():
        raise DataError(f"{path} is missing: {root} is not an extracted MAESTRO v3.0.0 folder")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        absent = [column for column in MAESTRO_COLUMNS if column not in (reader.fieldnames or [])]
        if absent:
            raise DataError(f"{path} lacks the column(s) {', '.join(absent)}")
        rows = list(reader)
    if not rows:
        raise DataError(f"{path} lists no recordings")
    return rows


def maestro_files(root: str | Path) -> dict[str, list[tuple[Path, dict[str, Any]]]]:
    """Split name (train/validation/test) -> [(audio path, metadata)], in the CSV's order.

    Metadata: composer, title, year (int), duration (seconds, float), split, midi (Path).
    Raises DataError naming up to a few listed audio files that are missing, with their count.
    """
    root = Path(root)
    splits: dict[str, list[tuple[Path, dict[str, Any]]]] = {name: [] for name in MAESTRO_SPLITS}
    missing: list[str] = []
    rows = _maestro_rows(root)
    for row in rows:
        if row["split"] not in splits:
            raise DataError(
                f"{root / MAESTRO_CSV} gives {row['audio_filename']} the split {row['split']!r}; "
                f"expected one of {', '.join(MAESTRO_SPLITS)}"
            )
        audio = _listed(root, row["audio_filename"])
        if not audio.is_file():
            missing.append(row["audio_filename"])
            continue
        metadata = {
            "composer": row["canonical_composer"],
            "title": row["canonical_title"],
            "year": int(row["year"]),
            "duration": float(row["duration"]),
            "split": row["split"],
            "midi": _listed(root, row["midi_filename"]),
        }
        splits[row["split"]].append((audio, metadata))
    if missing:
        raise _missing_error("audio files", root, missing, len(rows))
    return splits


def gtzan_files(root: str | Path) -> list[tuple[Path, str]]:
    """[(audio file, genre)] for every .wav/.au file in the genre folders under `root`, sorted.

    The genre is the file's folder; folders that are not GTZAN genres are not read.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root} is not a folder: expected GTZAN's genres/ folder")
    files = [
        (path, genre)
        for genre in GTZAN_GENRES
        if (root / genre).is_dir()
        for path in sorted((root / genre).iterdir())
        if path.is_file() and path.suffix.lower() in GTZAN_EXTENSIONS
    ]
    if not files:
        raise DataError(
            f"{root} holds no .wav or .au files in genre folders ({', '.join(GTZAN_GENRES)})"
        )
    return files


def _check_maestro(root: Path, audio: bool) -> None:
    if not (root / MAESTRO_JSON).is_file():
        raise DataError(f"{root / MAESTRO_JSON} is missing: {root} is incomplete")
    rows = _maestro_rows(root)
    columns = ("audio_filename", "midi_filename") if audio else ("midi_filename",)
    for column in columns:
        missing = [row[column] for row in rows if not _listed(root, row[column]).is_file()]
        if missing:
            kind = "audio files" if column == "audio_filename" else "MIDI files"
            raise _missing_error(kind, root, missing, len(rows))


def _check_gtzan(root: Path) -> None:
    # Every genre must be there with some audio; the count (100 each in the published set) is
    # not enforced, so a trimmed copy placed by hand still passes. A downloaded archive's
    # completeness is already vouched for by its checksum.
    empty = [
        genre
        for genre in GTZAN_GENRES
        if not (root / genre).is_dir()
        or not any(p.suffix.lower() in GTZAN_EXTENSIONS for p in (root / genre).iterdir())
    ]
    if empty:
        raise DataError(
            f"{root} lacks audio for the GTZAN genre folder(s) {', '.join(empty)} "
            f"(expected {root}/<genre>/<genre>.000NN.wav or .au)"
        )


_CHECKS: dict[str, Callable[[Path], None]] = {
    "maestro": lambda root: _check_maestro(root, audio=True),
    "maestro-midi": lambda root: _check_maestro(root, audio=False),
    "gtzan": _check_gtzan,
}


def verify_layout(dataset: str, root: str | Path) -> None:
    """Raise DataError naming what is missing unless `root` is a whole copy of `dataset`."""
    if dataset not in _CHECKS:
        raise ConfigError(f"unknown data set {dataset!r}; known: {', '.join(_CHECKS)}")
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root} does not exist or is not a folder")
    _CHECKS[dataset](root)
