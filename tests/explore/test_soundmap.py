"""Sound map projections (PCA, t-SNE, UMAP): shapes, range, determinism, structure and caching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from helius.explore import cached_projection, project, soundmap


def _two_clusters(count: int = 40, dim: int = 8) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    latents = 0.1 * torch.randn(count, dim, generator=generator)
    latents[count // 2 :, 0] += 3.0
    return latents


@pytest.mark.parametrize("method", ["pca", "tsne", "umap"])
def test_projection_shape_range_determinism_and_clusters(method: str) -> None:
    latents = _two_clusters()
    positions = project(latents, method, seed=0)
    assert positions.shape == (40, 2) and positions.dtype == np.float64
    assert positions.min() >= -1.0 and positions.max() <= 1.0
    assert np.isclose(np.abs(positions).max(), 1.0)  # the longer side spans -1..1
    np.testing.assert_array_equal(positions, project(latents, method, seed=0))
    # The two clusters stay apart: every point is nearer its own cluster's centre.
    first, second = positions[:20], positions[20:]
    spread = max(
        np.linalg.norm(first - first.mean(0), axis=1).max(),
        np.linalg.norm(second - second.mean(0), axis=1).max(),
    )
    assert np.linalg.norm(first.mean(0) - second.mean(0)) > 2 * spread


@pytest.mark.parametrize("method", ["pca", "tsne", "umap"])
@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_tiny_sets_still_project(method: str, count: int) -> None:
    latents = torch.randn(count, 4, generator=torch.Generator().manual_seed(count))
    positions = project(latents, method)
    assert positions.shape == (count, 2)
    assert np.isfinite(positions).all() and np.abs(positions).max() <= 1.0


def test_pca_of_one_dimensional_latents_is_a_line() -> None:
    positions = project(np.linspace(-2, 2, 9)[:, None], "pca")
    assert positions.shape == (9, 2)
    np.testing.assert_allclose(positions[:, 1], 0.0)
    np.testing.assert_allclose(np.abs(positions[:, 0]).max(), 1.0)


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="projection"):
        project(torch.zeros(4, 2), "mds")
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        project(torch.zeros(4), "pca")
    with pytest.raises(ValueError, match="NaN"):
        project(torch.full((4, 2), float("nan")), "pca")


def test_cache_is_reused_and_keyed_by_checkpoint_latents_and_method(tmp_path: Path) -> None:
    checkpoint = tmp_path / "vae.pt"
    checkpoint.write_bytes(b"weights v1")
    latents = _two_clusters(12, 4)
    first = cached_projection(checkpoint, latents, "tsne", seed=0)
    cache_files = sorted(tmp_path.glob("vae.map-tsne-*.npy"))
    assert len(cache_files) == 1
    np.testing.assert_array_equal(first, project(latents, "tsne", seed=0))
    # Reused: a doctored cache file is what comes back (proof it was not recomputed).
    np.save(cache_files[0], np.full((12, 2), 0.5))
    np.testing.assert_array_equal(cached_projection(checkpoint, latents, "tsne"), 0.5)
    # Other latents, another method or a retrained checkpoint make new entries.
    cached_projection(checkpoint, latents[:-1], "tsne")
    cached_projection(checkpoint, latents, "pca")
    checkpoint.write_bytes(b"weights v2")
    again = cached_projection(checkpoint, latents, "tsne")
    np.testing.assert_array_equal(again, first)
    assert len(list(tmp_path.glob("vae.map-*.npy"))) == 4
    assert not list(tmp_path.glob("*.tmp"))


def test_broken_cache_is_recomputed_and_unwritable_folder_still_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoint = tmp_path / "vae.pt"
    checkpoint.write_bytes(b"weights")
    latents = _two_clusters(10, 3)
    expected = cached_projection(checkpoint, latents, "pca")
    (cache_file,) = tmp_path.glob("vae.map-pca-*.npy")
    cache_file.write_bytes(b"truncated")
    np.testing.assert_array_equal(cached_projection(checkpoint, latents, "pca"), expected)
    assert np.load(cache_file, allow_pickle=False).shape == (10, 2)
    cache_file.unlink()

    def refuse(path):
        raise PermissionError(f"read-only folder: {path}")

    monkeypatch.setattr(soundmap, "atomic_output", refuse)
    np.testing.assert_array_equal(cached_projection(checkpoint, latents, "pca"), expected)
    assert not list(tmp_path.glob("vae.map-*"))
