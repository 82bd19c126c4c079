"""The sound map: 2-D projections of latents (PCA, t-SNE, UMAP), cached beside the checkpoint."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import numpy as np
import torch

from helius.errors import MissingToolError
from helius.files import atomic_output

__all__ = ["PROJECTIONS", "cached_projection", "project"]

PROJECTIONS = ("pca", "tsne", "umap")

_CACHE_FORMAT = b"helius-soundmap-1"
_HASH_BLOCK_BYTES = 1 << 20
# Hashing a large checkpoint takes a while; remember digests by (path, size, mtime).
_checkpoint_digests: dict[tuple[str, int, int], str] = {}
_digest_lock = threading.Lock()
_umap_lock = threading.Lock()


def project(latents, method: str = "pca", seed: int = 0) -> np.ndarray:
    """Map positions (N, 2), float64 in [-1, 1], of latents (N, D).

    Both axes share one scale (centred on the middle of their range, the longer side spanning
    -1..1), so distances on the map keep their proportions. Same latents and seed, same map.
    """
    data = _as_matrix(latents)
    if method not in PROJECTIONS:
        raise ValueError(f"unknown projection {method!r}; use one of {', '.join(PROJECTIONS)}")
    count = data.shape[0]
    if count <= 2:  # nothing to learn a layout from: a point in the middle, or a line
        raw = np.zeros((count, 2))
        if count == 2:
            raw[:, 0] = [-1.0, 1.0]
        return _normalise(raw)
    if method == "pca":
        raw = _pca(data)
    elif method == "tsne":
        raw = _tsne(data, seed)
    else:
        raw = _umap(data, seed)
    return _normalise(raw)


def cached_projection(
    checkpoint_path: str | os.PathLike, latents, method: str = "pca", seed: int = 0
) -> np.ndarray:
    """`project(latents, method, seed)`, stored beside the checkpoint and reused.

    The cache file `<checkpoint stem>.map-<method>-<key>.npy` is keyed by a hash of the
    checkpoint's bytes, the latents, the method and the seed, so a retrained model or a changed
    data set never gets a stale map. Written atomically; a folder that cannot be written to
    only costs the caching.
    """
    checkpoint_path = Path(checkpoint_path)
    data = _as_matrix(latents)
    if method not in PROJECTIONS:
        raise ValueError(f"unknown projection {method!r}; use one of {', '.join(PROJECTIONS)}")
    key = hashlib.sha256()
    key.update(_CACHE_FORMAT)
    key.update(_checkpoint_digest(checkpoint_path).encode())
    key.update(repr((data.shape, method, int(seed))).encode())
    key.update(np.ascontiguousarray(data, dtype=np.float64).tobytes())
    cache_path = checkpoint_path.with_name(
        f"{checkpoint_path.stem}.map-{method}-{key.hexdigest()[:20]}.npy"
    )
    if cache_path.is_file():
        try:
            cached = np.load(cache_path, allow_pickle=False)
            if cached.shape == (data.shape[0], 2):
                return cached
        except (OSError, ValueError):
            pass  # unreadable or truncated by hand: compute it again
    positions = project(data, method, seed)
    try:
        with atomic_output(cache_path) as tmp_path, open(tmp_path, "wb") as handle:
            np.save(handle, positions, allow_pickle=False)
    except OSError:
        pass  # a read-only model folder: the map still works, it is just not cached
    return positions


def _as_matrix(latents) -> np.ndarray:
    if isinstance(latents, torch.Tensor):
        latents = latents.detach().cpu().double().numpy()
    data = np.asarray(latents, dtype=np.float64)
    if data.ndim != 2 or data.shape[1] == 0:
        raise ValueError(f"need latents (N, D) to project, got shape {data.shape}")
    if not np.isfinite(data).all():
        raise ValueError("cannot project latents that contain NaN or infinity")
    return data


def _normalise(raw: np.ndarray) -> np.ndarray:
    raw = np.asarray(raw, dtype=np.float64)
    if raw.shape[0] == 0:
        return raw.reshape(0, 2)
    low, high = raw.min(axis=0), raw.max(axis=0)
    centred = raw - (low + high) / 2.0
    half_span = float((high - low).max()) / 2.0
    if half_span <= 0.0:
        return np.zeros_like(raw)
    return np.clip(centred / half_span, -1.0, 1.0)


def _pad_to_two(raw: np.ndarray) -> np.ndarray:
    if raw.shape[1] < 2:  # one latent dimension (or one varying direction): a line
        raw = np.concatenate([raw, np.zeros((raw.shape[0], 2 - raw.shape[1]))], axis=1)
    return raw


def _pca(data: np.ndarray) -> np.ndarray:
    from sklearn.decomposition import PCA

    components = min(2, data.shape[0], data.shape[1])
    return _pad_to_two(PCA(n_components=components).fit_transform(data))


def _tsne(data: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.manifold import TSNE

    # Perplexity must stay below the number of points; 30 is the usual value for large sets.
    perplexity = float(min(30.0, max(1.0, (data.shape[0] - 1) / 3.0)))
    tsne = TSNE(
        n_components=2,
        perplexity=perplexity,
        init="pca" if data.shape[1] >= 2 else "random",
        random_state=seed,
    )
    return tsne.fit_transform(data)


def _umap(data: np.ndarray, seed: int) -> np.ndarray:
    count = data.shape[0]
    neighbours = min(15, count - 1)
    with _umap_lock:  # numba's workqueue layer (see _import_umap) runs one caller at a time
        umap = _import_umap()
        reducer = umap.UMAP(
            n_components=2,
            n_neighbors=max(2, neighbours),
            random_state=seed,
            # The spectral start needs more points than neighbours to be solvable.
            init="spectral" if count > neighbours + 3 else "random",
            n_jobs=1,
        )
        return reducer.fit_transform(data)


def _import_umap():
    try:
        import numba
    except ImportError:
        numba = None
    if numba is not None and "NUMBA_THREADING_LAYER" not in os.environ:
        # numba's default OpenMP layer and scikit-learn's own OpenMP runtime slow each other
        # down badly in one process (a t-SNE map after a UMAP one took ~10 s instead of
        # 0.05 s); numba's own thread pool does not. Set before numba starts any threads.
        numba.config.THREADING_LAYER = "workqueue"
    try:
        import umap
    except ImportError:
        raise MissingToolError(
            "the UMAP sound map needs umap-learn: pip install umap-learn (or use pca / tsne)"
        ) from None
    return umap


def _checkpoint_digest(path: Path) -> str:
    try:
        stat = path.stat()
    except OSError as error:
        raise FileNotFoundError(f"checkpoint {path} cannot be read: {error}") from None
    memo_key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _digest_lock:
        if memo_key in _checkpoint_digests:
            return _checkpoint_digests[memo_key]
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_HASH_BLOCK_BYTES):
            digest.update(block)
    with _digest_lock:
        _checkpoint_digests[memo_key] = digest.hexdigest()
    return digest.hexdigest()
