"""Download, verify and unpack the HarmonicVAE training sets (MAESTRO v3, GTZAN) into a folder.

`download` resumes an interrupted transfer (an HTTP Range request onto `<archive>.part`), checks
the archive's size and checksum, unpacks it into a temporary folder inside `dataset_dir` and
renames the data set's folder into place only once its layout is verified: nothing half-written
ever carries a final name. A verified folder already there is used as it is, and an archive put
in `dataset_dir` by hand is only verified and unpacked.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from helius import progress as bars
from helius.errors import ConfigError, DataError
from helius.harmonic.layouts import verify_layout

__all__ = ["SOURCES", "Source", "download"]


@dataclass(frozen=True)
class Source:
    """Where a data set comes from and what its archive must look like."""

    urls: tuple[str, ...]  # tried in order
    archive: str  # the archive's file name in dataset_dir
    size: int | None  # bytes; None: not checked
    checksum: tuple[str, str] | None  # (hashlib algorithm, hex digest); None: size only
    kind: str  # "zip" or "tar" (any compression tarfile reads)
    root: str  # the folder the archive extracts to
    layout: str  # the layouts.verify_layout check for that folder
    marker: str  # a path inside root that a placed-by-hand copy must have (for messages)


_MAESTRO = "https://storage.googleapis.com/magentadata/datasets/maestro/v3.0.0/"
_GTZAN = "http://opihi.cs.uvic.ca/sound/genres.tar.gz"
SOURCES: dict[str, Source] = {
    # SHA256s as the publisher's page (magenta's MAESTRO page) gives them. The full archive's
    # size is the storage server's Content-Range total; the MIDI archive's is the one MusPy
    # checks. Both were read from third-party records, not measured here.
    "maestro": Source(
        urls=(_MAESTRO + "maestro-v3.0.0.zip",),
        archive="maestro-v3.0.0.zip",
        size=108_445_099_632,
        checksum=("sha256", "6680fea5be2339ea15091a249fbd70e49551246ddbd5ca50f1b2352c08c95291"),
        kind="zip",
        root="maestro-v3.0.0",
        layout="maestro",
        marker="maestro-v3.0.0.csv",
    ),
    "maestro-midi": Source(
        urls=(_MAESTRO + "maestro-v3.0.0-midi.zip",),
        archive="maestro-v3.0.0-midi.zip",
        size=58_416_533,
        checksum=("sha256", "70470ee253295c8d2c71e6d9d4a815189e35c89624b76d22fce5a019d5dde12c"),
        kind="zip",
        root="maestro-v3.0.0",
        layout="maestro-midi",
        marker="maestro-v3.0.0.csv",
    ),
    # GTZAN's publisher gives no checksum: size and SHA256 are the ones TensorFlow Datasets and
    # torchaudio both check for this file. The original host is often down; the second URL is
    # the Wayback Machine's copy of the same file (the checksum guards either).
    "gtzan": Source(
        urls=(_GTZAN, "https://web.archive.org/web/20220328223413/" + _GTZAN),
        archive="genres.tar.gz",
        size=1_225_571_541,
        checksum=("sha256", "24347e0223d2ba798e0a558c4c172d9d4a19c00bb7963fe055d183dadb4ef2c6"),
        kind="tar",
        root="genres",
        layout="gtzan",
        marker="blues",
    ),
}

_CHUNK = 1 << 20
_ATTEMPTS = 3  # transfers per URL that may break off mid-body before we give up (and keep .part)
_AGENT = "helius-download/1"
_EXTRACTING = ".extracting-"


class _Interrupted(Exception):
    """The body broke off (or resumed at the wrong offset): try again from what .part holds."""


def _command(name: str, dataset_dir: Path) -> str:
    return f"`helius harmonic --mode download --dataset {name} --dataset_dir {dataset_dir}`"


def _by_hand(name: str, source: Source, dataset_dir: Path) -> str:
    root = dataset_dir / source.root
    return (
        f"To set it up by hand, fetch {source.urls[0]} where you can, then put the archive at "
        f"{dataset_dir / source.archive}, or its extracted folder at {root}/ (so that "
        f"{root / source.marker} exists), and rerun {_command(name, dataset_dir)}: "
        "it will then only verify and extract what is there."
    )


def _set_aside(path: Path, archive: Path, problem: str, name: str, dataset_dir: Path) -> DataError:
    # A bad file is moved out of the way so that a rerun starts clean, but kept for inspection.
    bad = archive.with_name(archive.name + ".corrupt")
    os.replace(path, bad)
    return DataError(
        f"{archive} is unusable: {problem}. It was moved to {bad}; delete that file and rerun "
        f"{_command(name, dataset_dir)} to download it again."
    )


def _fetch(url: str, part: Path, size: int | None, timeout: float, show: bool) -> None:
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have > size:
        part.unlink()
        have = 0
    if size is not None and have == size:
        return  # complete already; the checksum decides
    headers = {"User-Agent": _AGENT, **({"Range": f"bytes={have}-"} if have else {})}
    try:
        request = urllib.request.Request(url, headers=headers)
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:
            return  # nothing past what we hold: .part is whole, or the checksum will say not
        raise
    with response:
        length = response.headers.get("Content-Length")
        if response.status == 206:
            start = (response.headers.get("Content-Range") or "").removeprefix("bytes ")
            if not start.startswith(f"{have}-"):
                part.unlink()
                raise _Interrupted(f"resumed at {start.split('-')[0]!r}, not byte {have}")
            mode = "ab"
        else:
            have, mode = 0, "wb"  # the server ignored Range: start over from byte 0
        total = have + int(length) if length is not None else size
        if size is not None and total != size:
            # Likely an error page or another file: the next URL may do better.
            raise urllib.error.URLError(f"it offers {total} bytes where {size} are expected")
        if total is not None and shutil.disk_usage(part.parent).free < total - have:
            # Found now rather than after hours of transfer (MAESTRO is 101 GiB).
            raise DataError(
                f"{part.parent} has less free space than the {total - have} bytes "
                f"left to download into {part}"
            )
        bar = bars.bar(
            total=total, initial=have, unit="B", unit_scale=True, desc=part.name, disable=not show
        )
        with part.open(mode) as out, bar:
            try:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
            except (http.client.HTTPException, OSError) as error:
                raise _Interrupted(f"broke off after {out.tell()} bytes ({error})") from error
            # read(n) returns b"" when the connection closes early, without raising
            # IncompleteRead: the byte count is the only sign of a cut-off body.
            if total is not None and out.tell() < total:
                raise _Interrupted(f"broke off after {out.tell()} of {total} bytes")


def _download(name: str, source: Source, dataset_dir: Path, timeout: float, show: bool) -> Path:
    part = dataset_dir / (source.archive + ".part")
    failures: list[str] = []
    for url in source.urls:
        for _ in range(_ATTEMPTS):
            try:
                _fetch(url, part, source.size, timeout, show)
                return part
            except _Interrupted as error:
                failures.append(f"{url}: {error}")
            except (urllib.error.URLError, OSError) as error:  # unreachable or refused: next URL
                failures.append(f"{url}: {getattr(error, 'reason', error)}")
                break
    held = ""
    if part.exists():
        held = f" {part} keeps the {part.stat().st_size} bytes received: rerun to resume."
    raise DataError(
        f"Could not download {name} ({'; '.join(failures)}).{held} "
        + _by_hand(name, source, dataset_dir)
    )


def _digest(path: Path, algorithm: str, show: bool) -> str:
    hasher = hashlib.new(algorithm)
    size = path.stat().st_size
    desc = f"{algorithm} {path.name}"
    bar = bars.bar(total=size, unit="B", unit_scale=True, desc=desc, disable=not show)
    with path.open("rb") as handle, bar:
        while block := handle.read(4 * _CHUNK):
            hasher.update(block)
            bar.update(len(block))
    return hasher.hexdigest()


def _problem(path: Path, source: Source, show: bool) -> str | None:
    """What is wrong with a complete-looking archive file, or None."""
    size = path.stat().st_size
    if source.size is not None and size != source.size:
        return f"it has {size} bytes, {source.size} expected"
    if source.checksum is not None:
        algorithm, expected = source.checksum
        found = _digest(path, algorithm, show)
        if found != expected.lower():
            return f"its {algorithm} is {found}, {expected} expected"
    return None


def _safe(name: str) -> bool:
    """A relative member name that stays inside the folder it is extracted to."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    absolute = name.startswith(("/", "\\")) or (bool(parts) and ":" in parts[0])  # C:...
    return not absolute and ".." not in parts


def _extract(archive: Path, source: Source, into: Path) -> None:
    """Unpack into `into`; DataError (message: the problem) on a bad or unsafe archive."""
    try:
        if source.kind == "zip":
            with zipfile.ZipFile(archive) as bundle:
                unsafe = [n for n in bundle.namelist() if not _safe(n)]
                if unsafe:
                    raise DataError(f"member {unsafe[0]!r} would land outside; refused")
                bundle.extractall(into)  # every member's CRC is checked as it is read
        else:
            with tarfile.open(archive) as bundle:
                # Checked member by member as the stream is read: one pass over a large .tar.gz.
                for member in bundle:
                    if not _safe(member.name):
                        raise DataError(f"member {member.name!r} would land outside; refused")
                    if not (member.isfile() or member.isdir()):
                        raise DataError(f"member {member.name!r} is a link or device; refused")
                    if hasattr(tarfile, "data_filter"):
                        bundle.extract(member, into, filter="data")
                    else:  # pragma: no cover - Pythons before the extraction filters
                        bundle.extract(member, into)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as error:
        raise DataError(f"it is not a valid {source.kind} archive ({error})") from error


def download(
    dataset: str,
    dataset_dir: str | os.PathLike,
    *,
    sources: dict[str, Source] | None = None,
    progress: bool = True,
    timeout: float = 30.0,
    keep_archive: bool = False,
) -> Path:
    """Make `dataset_dir/<root>` a verified copy of `dataset` ("maestro", "gtzan", ...); return it.

    `sources` replaces the table above (tests serve archives locally). `timeout` bounds each
    connection and read, in seconds. The archive is deleted once unpacked unless `keep_archive`.
    Raises DataError when the host cannot be reached (saying where to put the files by hand),
    when an archive is corrupt (it is moved to `<archive>.corrupt`), or when a folder already
    at `<root>` is incomplete (it is left alone).
    """
    table = SOURCES if sources is None else sources
    if dataset not in table:
        raise ConfigError(f"--dataset {dataset!r} is not known; choose from {', '.join(table)}")
    source, dataset_dir = table[dataset], Path(dataset_dir)
    dataset_dir.mkdir(parents=True, exist_ok=True)
    root = dataset_dir / source.root
    if root.exists():
        try:
            verify_layout(source.layout, root)
        except DataError as error:
            raise DataError(
                f"{root} already exists but is not a whole copy of {dataset}: {error}"
            ) from error
        return root
    for stale in dataset_dir.glob(f".{source.root}{_EXTRACTING}*"):
        shutil.rmtree(stale, ignore_errors=True)  # left by a run that was killed mid-extraction
    archive = dataset_dir / source.archive
    if not archive.exists():
        part = _download(dataset, source, dataset_dir, timeout, progress)
        problem = _problem(part, source, progress)
        if problem:
            raise _set_aside(part, archive, problem, dataset, dataset_dir)
        os.replace(part, archive)
    elif problem := _problem(archive, source, progress):
        raise _set_aside(archive, archive, problem, dataset, dataset_dir)
    staging = Path(tempfile.mkdtemp(prefix=f".{source.root}{_EXTRACTING}", dir=dataset_dir))
    try:
        try:
            _extract(archive, source, staging)
            if not (staging / source.root).is_dir():
                raise DataError(f"it does not hold the folder {source.root}/")
            verify_layout(source.layout, staging / source.root)
        except DataError as error:
            raise _set_aside(archive, archive, str(error), dataset, dataset_dir) from error
        os.replace(staging / source.root, root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not keep_archive:
        archive.unlink()
    return root
