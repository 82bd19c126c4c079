"""PresetStore: round trips, rename and delete, name checks that keep files inside the folder,
and concurrent writers (threads and processes) that never leave a broken preset."""

from __future__ import annotations

import json
import multiprocessing
import threading
from pathlib import Path

import pytest
import torch
from helpers import snapshot

from helius.errors import ConfigError
from helius.explore import PresetError, PresetStore


def test_round_trip_of_vectors_trajectories_and_meta(tmp_path: Path) -> None:
    store = PresetStore(tmp_path / "presets")
    assert store.list() == []
    vector = torch.tensor([0.5, -1.25, 3.0])
    trajectory = torch.arange(12, dtype=torch.float32).reshape(3, 4) / 7
    store.save("Bright kick", vector, {"source": "kick_0001.wav", "amount": 0.5})
    store.save("pad-2.v1", trajectory)
    assert store.list() == ["Bright kick", "pad-2.v1"]
    latent, meta = store.load("Bright kick")
    assert torch.equal(latent, vector) and meta == {"source": "kick_0001.wav", "amount": 0.5}
    latent, meta = store.load("pad-2.v1")
    assert latent.shape == (3, 4) and torch.allclose(latent, trajectory) and meta == {}
    record = json.loads((tmp_path / "presets" / "Bright kick.json").read_text())
    assert record["latent"] == [0.5, -1.25, 3.0]
    # Saving again under a name overwrites.
    store.save("Bright kick", -vector)
    assert torch.equal(store.load("Bright kick")[0], -vector)


def test_rename_and_delete(tmp_path: Path) -> None:
    store = PresetStore(tmp_path)
    store.save("a", torch.zeros(2))
    store.save("b", torch.ones(2))
    store.rename("a", "c")
    assert store.list() == ["b", "c"]
    assert torch.equal(store.load("c")[0], torch.zeros(2))
    with pytest.raises(PresetError, match="already exists"):
        store.rename("b", "c")
    with pytest.raises(PresetError, match="no preset named 'a'"):
        store.rename("a", "d")
    store.delete("b")
    assert store.list() == ["c"]
    with pytest.raises(PresetError, match="no preset named 'b'"):
        store.delete("b")
    with pytest.raises(PresetError, match="no preset named 'b'"):
        store.load("b")


@pytest.mark.parametrize(
    "bad_name", ["../x", "a/b", "a\\b", ".hidden", "", "x" * 65, "..", "/abs", "tab\tname", "é"]
)
def test_bad_names_are_rejected_and_nothing_is_written(tmp_path: Path, bad_name: str) -> None:
    folder = tmp_path / "models" / "presets"
    store = PresetStore(folder)
    store.save("keep", torch.zeros(2))
    before = snapshot(tmp_path)
    with pytest.raises(PresetError) as error:
        store.save(bad_name, torch.ones(2))
    assert "letters, digits" in str(error.value)
    assert isinstance(error.value, ConfigError)
    for action in (
        lambda: store.load(bad_name),
        lambda: store.delete(bad_name),
        lambda: store.rename("keep", bad_name),
        lambda: store.rename(bad_name, "other"),
    ):
        with pytest.raises(PresetError):
            action()
    assert snapshot(tmp_path) == before
    assert store.list() == ["keep"]


def test_longest_allowed_name_and_meta_must_be_json(tmp_path: Path) -> None:
    store = PresetStore(tmp_path)
    store.save("x" * 64, torch.zeros(1))
    assert store.list() == ["x" * 64]
    with pytest.raises(PresetError, match="JSON"):
        store.save("obj", torch.zeros(1), {"bad": object()})
    with pytest.raises(PresetError, match="NaN"):
        store.save("nan", torch.tensor([float("nan")]))
    assert store.list() == ["x" * 64]


def test_broken_files_are_reported_and_not_listed_when_misnamed(tmp_path: Path) -> None:
    store = PresetStore(tmp_path)
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / ".hidden.json").write_text("{}")
    assert store.list() == ["broken"]
    with pytest.raises(PresetError, match="cannot be read"):
        store.load("broken")
    (tmp_path / "foreign.json").write_text('{"latent": [1]}')
    with pytest.raises(PresetError, match="not a Helius preset"):
        store.load("foreign")


def test_beside_a_checkpoint(tmp_path: Path) -> None:
    store = PresetStore.beside(tmp_path / "run" / "vae_final.pt")
    assert store.folder == tmp_path / "run" / "vae_final_presets"


def _check_all_valid(folder: Path, expected_names: set[str]) -> None:
    store = PresetStore(folder)
    assert set(store.list()) == expected_names
    for name in expected_names:
        latent, meta = store.load(name)
        assert latent.shape == (32,)
        # Every value in a preset came from one save: never a mix of two writers.
        assert torch.all(latent == latent[0])
        assert meta["value"] == float(latent[0])
    leftovers = [path.name for path in folder.iterdir() if path.suffix == ".tmp"]
    assert leftovers == []


def test_eight_threads_writing_in_parallel_leave_valid_presets(tmp_path: Path) -> None:
    folder = tmp_path / "presets"
    errors: list[BaseException] = []

    def writer(thread: int) -> None:
        store = PresetStore(folder)  # its own store: only the file lock is shared
        shared = PresetStore(folder) if thread % 2 else store
        try:
            for write in range(20):
                value = float(thread * 100 + write)
                name = f"shared {write % 3}" if write % 2 else f"own {thread}"
                shared.save(name, torch.full((32,), value), {"value": value})
        except BaseException as error:  # reported below; a thread's exception is otherwise lost
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    _check_all_valid(folder, {f"own {t}" for t in range(8)} | {f"shared {k}" for k in range(3)})


def _process_writer(folder: str, worker: int) -> None:
    store = PresetStore(folder)
    for write in range(20):
        value = float(worker * 100 + write)
        store.save(f"shared {write % 2}", torch.full((32,), value), {"value": value})
        if write == 10:
            store.save(f"temp {worker}", torch.zeros(32), {"value": 0.0})
            store.rename(f"temp {worker}", f"kept {worker}")


def test_processes_writing_in_parallel_leave_valid_presets(tmp_path: Path) -> None:
    folder = tmp_path / "presets"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_process_writer, args=(str(folder), k)) for k in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [worker.exitcode for worker in workers] == [0, 0, 0]
    _check_all_valid(folder, {"shared 0", "shared 1"} | {f"kept {k}" for k in range(3)})
