"""The manual's data sets (maestro, gtzan, custom, combined) as prepared folders, through the one
`helius prep`: each layout only labels its files (MAESTRO's composer and CSV split, GTZAN's
genre folder, a custom folder's first subfolder) and picks the files that belong to it.

`combined` prepares every given data set into its own subfolder of the output folder and writes
indexes over all of them beside those (index entries resolve against their index's folder).
A folder that is already prepared (it has a train_index.txt) is used as it is.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from helius.data.prep import PrepResult, prepare
from helius.data.segment import PrepSettings
from helius.errors import ConfigError, DataError
from helius.files import atomic_write_text
from helius.harmonic.layouts import gtzan_files, maestro_files

DATASETS = ("maestro", "gtzan", "custom", "combined")
# MAESTRO's split names -> prep's (its "test" pieces go to test_index.txt, unused in training).
_MAESTRO_SPLIT = {"train": "train", "validation": "val", "test": "test"}


@dataclass
class Prepared:
    """Where the indexes of a prepared data set are, and what each prep run did."""

    folder: Path
    results: dict[str, PrepResult] = field(default_factory=dict)

    @property
    def train_index(self) -> Path:
        return self.folder / "train_index.txt"

    @property
    def val_index(self) -> Path:
        return self.folder / "val_index.txt"

    def summary(self) -> str:
        if not self.results:
            return f"using the prepared data in {self.folder}"
        return "\n".join(f"{name}: {result.summary()}" for name, result in self.results.items())


def is_prepared(folder: Path) -> bool:
    return (folder / "train_index.txt").is_file()


def _root(folder: Path, inner: str) -> Path:
    """The data set's own folder: `folder` itself, or `folder/inner` as download leaves it."""
    return folder / inner if (folder / inner).is_dir() else folder


def _maestro_labels(folder: Path):
    root = _root(folder, "maestro-v3.0.0")
    splits: dict[str, str] = {}
    tags: dict[str, dict[str, str]] = {}
    for split, files in maestro_files(root).items():
        for path, meta in files:
            relpath = path.relative_to(root).as_posix()
            splits[relpath] = _MAESTRO_SPLIT[split]
            tags[relpath] = {"composer": str(meta["composer"]), "year": str(meta["year"])}
    return root, (lambda relpath: tags.get(relpath, {})), splits.get


def _gtzan_labels(folder: Path):
    root = _root(folder, "genres")
    genres = {path.relative_to(root).as_posix(): genre for path, genre in gtzan_files(root)}
    return root, (lambda relpath: {"genre": genres[relpath]} if relpath in genres else {}), None


def _custom_labels(folder: Path):
    def tags(relpath: str) -> dict[str, str]:
        parts = relpath.split("/")
        return {"folder": parts[0]} if len(parts) > 1 else {}

    return folder, tags, None


_LABELS: dict[str, Callable[[Path], tuple]] = {
    "maestro": _maestro_labels,
    "gtzan": _gtzan_labels,
    "custom": _custom_labels,
}


def prepare_dataset(
    dataset: str,
    folders: dict[str, Path | None],
    output_dir: Path,
    settings: PrepSettings,
    val_fraction: float,
    workers: int | None = None,
    overwrite: bool = False,
) -> Prepared:
    """Prepare `dataset` (one of DATASETS) from `folders` ({"maestro": dir, "gtzan": dir,
    "custom": dir}, None where not given) into `output_dir`."""
    if dataset not in DATASETS:
        raise ConfigError(f"--dataset {dataset!r}: choose one of {', '.join(DATASETS)}")
    names = [name for name in _LABELS if folders.get(name)] if dataset == "combined" else [dataset]
    if dataset == "combined" and len(names) < 1:
        raise ConfigError("--dataset combined needs --maestro_dir, --gtzan_dir or --custom_dir")
    missing = [name for name in names if not folders.get(name)]
    if missing:
        raise ConfigError(f"--dataset {dataset} needs --{missing[0]}_dir (or --dataset_dir)")
    prepared = Prepared(output_dir)
    for name in names:
        folder = Path(folders[name])
        if not folder.is_dir():
            raise DataError(
                f"{name} folder {folder} does not exist; get it with `helius harmonic --mode "
                f"download --dataset {name} --dataset_dir {folder}`"
                if name != "custom"
                else f"custom folder {folder} does not exist"
            )
        target = output_dir / name if dataset == "combined" else output_dir
        if is_prepared(folder):
            if dataset != "combined":
                return Prepared(folder)
            raise ConfigError(f"{folder} is already prepared; give combined the raw folders")
        root, tags_for, split_for = _LABELS[name](folder)
        prepared.results[name] = prepare(
            root,
            target,
            settings,
            val_fraction,
            workers,
            overwrite,
            tags_for=tags_for,
            split_for=split_for,
        )
    if dataset == "combined":
        for split in ("train", "val"):
            lines = []
            for name in names:
                index = output_dir / name / f"{split}_index.txt"
                lines += [f"{name}/{line}" for line in index.read_text().splitlines() if line]
            atomic_write_text(output_dir / f"{split}_index.txt", "".join(f"{x}\n" for x in lines))
    return prepared


def source_tags(index: Path) -> dict[str, dict[str, str]]:
    """Segment path (as the index lists it) -> its source's tags, from the manifests beside
    the index (a combined folder's per-data-set manifests included)."""
    found: dict[str, dict[str, str]] = {}
    folder = index.parent
    manifests = [(folder / "manifest.jsonl", "")]
    manifests += [(p, p.parent.name + "/") for p in folder.glob("*/manifest.jsonl")]
    for manifest, prefix in manifests:
        if manifest.is_file():
            for line in manifest.read_text().splitlines():
                if line.strip():
                    record = json.loads(line)
                    found[prefix + record["segment"]] = record.get("tags", {})
    return found
