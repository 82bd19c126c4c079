"""Raw/edit training pairs of a data folder: which raw tracks have an edited partner, which
files cannot be used and why, and the extra finished tracks in reference/.

Layout (the seed's): ROOT/input/NAME_raw.(wav|mp3|flac|ogg) is paired with
ROOT/desired_output/NAME_edit.wav; ROOT/reference/ optionally holds finished tracks;
ROOT/pointer_sequences/NAME.npz, when present, holds a pair's pointer sequence.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from helius.audio import io
from helius.errors import DataError, HeliusError

RAW_SUFFIX, EDIT_SUFFIX = "_raw", "_edit"
RAW_EXTENSIONS = (".wav", ".mp3", ".flac", ".ogg")
EDIT_EXTENSIONS = (".wav",)
LAYOUT = (
    "expected ROOT/input/NAME_raw.wav (or .mp3/.flac/.ogg) and ROOT/desired_output/NAME_edit.wav,"
    " optionally ROOT/reference/ with finished tracks"
)


@dataclass(frozen=True)
class Pair:
    name: str
    raw: Path
    edit: Path
    raw_seconds: float
    edit_seconds: float
    pointers: Path | None  # pointer_sequences/NAME.npz if it exists


@dataclass(frozen=True)
class Reference:
    path: Path
    seconds: float


@dataclass(frozen=True)
class Skipped:
    path: Path
    reason: str


@dataclass(frozen=True)
class PairReport:
    root: Path
    pairs: list[Pair]
    references: list[Reference]
    skipped: list[Skipped]

    def summary(self) -> str:
        head = (
            f"{self.root}: {len(self.pairs)} pair(s), {len(self.references)} reference "
            f"track(s), {len(self.skipped)} file(s) skipped"
        )
        lines = [head]
        if self.pairs:
            with_pointers = sum(pair.pointers is not None for pair in self.pairs)
            lines.append(f"pairs ({with_pointers} with pointer sequences):")
        for pair in self.pairs:
            lines.append(
                f"  {pair.name}: {self._rel(pair.raw)} ({pair.raw_seconds:.1f} s) -> "
                f"{self._rel(pair.edit)} ({pair.edit_seconds:.1f} s)"
                + ("" if pair.pointers is None else ", pointers")
            )
        if self.references:
            lines.append("reference:")
            lines += [f"  {self._rel(ref.path)} ({ref.seconds:.1f} s)" for ref in self.references]
        if self.skipped:
            lines.append("skipped:")
            lines += [f"  {self._rel(skip.path)}: {skip.reason}" for skip in self.skipped]
        if not self.pairs:
            lines.append(f"no usable pairs; {LAYOUT}")
        return "\n".join(lines)

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()


def find_pairs(root: Path, min_seconds: float = 5.0) -> PairReport:
    """Match root/input/NAME_raw.* with root/desired_output/NAME_edit.wav; every file that
    is not part of a pair (no partner, unreadable, shorter than `min_seconds`, misnamed) is
    listed in the report's `skipped` with the reason."""
    root = Path(root)
    missing = [name for name in ("input", "desired_output") if not (root / name).is_dir()]
    if missing:
        folders = " and ".join(f"{name}/" for name in missing)
        raise DataError(f"--data_dir {root}: no {folders} folder; {LAYOUT}")
    skipped: list[Skipped] = []
    raws = _named(root / "input", RAW_SUFFIX, RAW_EXTENSIONS, skipped)
    edits = _named(root / "desired_output", EDIT_SUFFIX, EDIT_EXTENSIONS, skipped)
    pairs = []
    for name in sorted(raws.keys() | edits.keys()):
        raw, edit = raws.get(name), edits.get(name)
        if raw is None or edit is None:
            present, folder, suffix = (
                (raw, "desired_output", f"{EDIT_SUFFIX}.wav")
                if edit is None
                else (edit, "input", f"{RAW_SUFFIX}.wav (or .mp3/.flac/.ogg)")
            )
            skipped.append(Skipped(present, f"no partner {folder}/{name}{suffix}"))
            continue
        raw_seconds = _usable_seconds(raw, min_seconds, skipped)
        edit_seconds = _usable_seconds(edit, min_seconds, skipped)
        if raw_seconds is None or edit_seconds is None:
            for side, seconds, other in ((raw, raw_seconds, edit), (edit, edit_seconds, raw)):
                if seconds is not None:
                    skipped.append(Skipped(side, f"its partner {other.name} is skipped"))
            continue
        pointers = root / "pointer_sequences" / f"{name}.npz"
        pointers_path = pointers if pointers.is_file() else None
        pairs.append(Pair(name, raw, edit, raw_seconds, edit_seconds, pointers_path))
    references = []
    if (root / "reference").is_dir():
        for path in _files(root / "reference", skipped):
            seconds = _usable_seconds(path, min_seconds, skipped)
            if seconds is not None:
                references.append(Reference(path, seconds))
    skipped.sort(key=lambda skip: skip.path)
    return PairReport(root, pairs, references, skipped)


def _files(folder: Path, skipped: list[Skipped]) -> list[Path]:
    """The files of a folder; subfolders are listed as skipped (pairs are not searched for in
    them, so that a stray copy is never paired by accident)."""
    files = []
    for path in sorted(folder.iterdir()):
        if path.is_dir():
            skipped.append(Skipped(path, "a subfolder: only files directly in the folder count"))
        else:
            files.append(path)
    return files


def _named(
    folder: Path, suffix: str, extensions: tuple[str, ...], skipped: list[Skipped]
) -> dict[str, Path]:
    """NAME -> path for the folder's files named NAME{suffix}{extension}; the others skipped."""
    found: dict[str, Path] = {}
    wanted = f"NAME{suffix}{'/'.join(extensions)}"
    for path in _files(folder, skipped):
        stem = path.stem
        if path.suffix.lower() not in extensions or not stem.endswith(suffix) or stem == suffix:
            skipped.append(Skipped(path, f"not named {wanted}"))
        elif stem[: -len(suffix)] in found:
            first = found[stem[: -len(suffix)]].name
            skipped.append(Skipped(path, f"same NAME as {first}, which is used instead"))
        else:
            found[stem[: -len(suffix)]] = path
    return found


def _usable_seconds(path: Path, min_seconds: float, skipped: list[Skipped]) -> float | None:
    """The file's duration from its header, or None (and a skip reason) if it cannot be read
    or is shorter than `min_seconds`."""
    try:
        seconds = io.info(path).duration_seconds
    except HeliusError as error:
        skipped.append(Skipped(path, f"unreadable: {error}"))
        return None
    if seconds is None:
        skipped.append(Skipped(path, "unreadable: its length is unknown"))
        return None
    if seconds < min_seconds:
        skipped.append(Skipped(path, f"too short: {seconds:.2f} s < min_seconds {min_seconds}"))
        return None
    return seconds
