"""Visual and audible checks of a mel VAE at one step or epoch: reconstruction figures and audio,
latent t-SNE and UMAP maps coloured by tag, novel samples, and the latent statistics (sparsity).

`visualize` writes everything into one folder, every file atomically (a temporary name beside
it, then os.replace), and returns what it wrote. Names carry the step, zero-padded to six digits
so a folder lists in order: `recon_000010_0.png`, `latent_tsne_000010.png`, `samples_000010_0.wav`,
`summary_000010.json`, ...

Sparsity (the manual's share of inactive latent dimensions) is defined here by the KL: a
dimension is inactive when its KL(q(z_d | x) || N(0, 1)), averaged over the N encodings, is below
`threshold` nats (0.01, `helius.harmonic.mel_task.INACTIVE_NATS`, the threshold the validation
reports). Such a dimension's posterior is the prior whatever the input, so the decoder gets
nothing through it. `latent_stats` also gives the variance-of-mu view (Burda et al.'s active
units: Var over inputs of E[z_d | x]) as `variance_sparsity`, for comparison only; with a
collapsed posterior both agree, but a dimension can have a spread-out mu and a small posterior
variance, and only the KL weighs both.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure

from helius.audio.io import save as save_audio
from helius.explore.soundmap import project
from helius.files import atomic_output, atomic_write_text
from helius.harmonic.mel_task import INACTIVE_NATS
from helius.harmonic.mel_vae import MelVAE
from helius.harmonic.sampling import check_inverter, default_inverter, invert, prior_latents
from helius.harmonic.vocoder import MelInverter
from helius.losses import kl_per_dim

__all__ = ["MIN_POINTS", "latent_stats", "sparsity", "visualize"]

# Fewer encodings than this give no map worth drawing (t-SNE and UMAP need neighbours).
MIN_POINTS = 3
_DPI = 90


def sparsity(mu: torch.Tensor, logvar: torch.Tensor, threshold: float = INACTIVE_NATS) -> float:
    """Share of latent dimensions whose KL to the prior, averaged over the N encodings
    (mu, logvar: (N, D)), is below `threshold` nats: 0 when every dimension carries
    information, 1 when the posterior has collapsed to the prior."""
    kl = kl_per_dim(mu.detach().double(), logvar.detach().double())
    return float((kl < threshold).double().mean())


def latent_stats(
    mu: torch.Tensor, logvar: torch.Tensor, threshold: float = INACTIVE_NATS
) -> dict[str, Any]:
    """Per-dimension KL (nats), its total, the active and inactive dimensions (by the KL, as
    `sparsity`), the variance over inputs of mu and the mean posterior variance per dimension,
    and the variance-of-mu sparsity (share of dimensions with Var(mu) < `threshold`)."""
    mu, logvar = mu.detach().double().cpu(), logvar.detach().double().cpu()
    kl = kl_per_dim(mu, logvar)
    mu_variance = mu.var(dim=0, unbiased=False)  # population variance: defined for N = 1
    inactive = kl < threshold
    return {
        "encodings": int(mu.shape[0]),
        "latent_dim": int(mu.shape[1]),
        "threshold_nats": float(threshold),
        "kl_per_dim": kl.tolist(),
        "kl_total": float(kl.sum()),
        "active_dims": int((~inactive).sum()),
        "inactive_dims": torch.nonzero(inactive).flatten().tolist(),
        "sparsity": float(inactive.double().mean()),
        "mu_variance": mu_variance.tolist(),
        "posterior_variance": logvar.exp().mean(dim=0).tolist(),
        "variance_sparsity": float((mu_variance < threshold).double().mean()),
    }


def _save_png(figure: Figure, path: Path) -> Path:
    # A Figure without pyplot: no global backend or figure manager to leak between calls.
    with atomic_output(path) as tmp_path:
        figure.savefig(tmp_path, format="png", dpi=_DPI, bbox_inches="tight")
    return path


def _mel_axes(axis, log_mel: np.ndarray, title: str, limits: tuple[float, float]) -> None:
    axis.imshow(
        log_mel, origin="lower", aspect="auto", cmap="magma", vmin=limits[0], vmax=limits[1]
    )
    axis.set_title(title, fontsize=9)
    axis.set_xticks([])
    axis.set_yticks([])


def _reconstruction_figure(original: np.ndarray, rebuilt: np.ndarray, path: Path) -> Path:
    """Input and reconstruction side by side on one colour scale (log magnitude)."""
    figure = Figure(figsize=(7.0, 2.8))
    limits = (float(min(original.min(), rebuilt.min())), float(max(original.max(), rebuilt.max())))
    for index, (image, title) in enumerate(((original, "input"), (rebuilt, "reconstruction"))):
        _mel_axes(figure.add_subplot(1, 2, index + 1), image, title, limits)
    return _save_png(figure, path)


def _grid_figure(mels: np.ndarray, path: Path) -> Path:
    columns = min(4, len(mels))
    rows = math.ceil(len(mels) / columns)
    figure = Figure(figsize=(2.4 * columns, 2.0 * rows))
    limits = (float(mels.min()), float(mels.max()))
    for index, image in enumerate(mels):
        _mel_axes(figure.add_subplot(rows, columns, index + 1), image, f"sample {index}", limits)
    return _save_png(figure, path)


def _scatter_figure(
    points: np.ndarray, tags: list[str] | None, title: str, path: Path
) -> list[str]:
    """A map of the latents, one colour and legend entry per tag (one colour without tags);
    returns the legend's labels as matplotlib drew them."""
    figure = Figure(figsize=(5.0, 4.2))
    axis = figure.add_subplot(1, 1, 1)
    labels: list[str] = []
    if tags is None:
        axis.scatter(points[:, 0], points[:, 1], s=18, color="#3465a4")
    else:
        names = list(dict.fromkeys(tags))  # in order of first appearance
        palette = colormaps["tab10" if len(names) <= 10 else "tab20"]
        for index, name in enumerate(names):
            mask = np.array([tag == name for tag in tags])
            colour = palette(index % palette.N)
            axis.scatter(points[mask, 0], points[mask, 1], s=18, color=colour, label=name)
        legend = axis.legend(fontsize=8, loc="best", title="tag")
        labels = [text.get_text() for text in legend.get_texts()]
    axis.set_xticks([])
    axis.set_yticks([])
    axis.set_title(title, fontsize=10)
    _save_png(figure, path)
    return labels


def _as_clips(patches_audio: torch.Tensor | Sequence) -> list[torch.Tensor]:
    """(N, C, T) tensor or a list of (T,) / (C, T) clips -> N float32 (C, T) tensors."""
    clips = []
    for clip in patches_audio:
        tensor = torch.as_tensor(clip, dtype=torch.float32).detach().cpu()
        if tensor.ndim == 1:
            tensor = tensor[None]
        if tensor.ndim != 2:
            raise ValueError(f"each patch must be (T,) or (C, T) audio, got {tuple(tensor.shape)}")
        clips.append(tensor)
    return clips


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    return value


@torch.no_grad()
def visualize(
    model: MelVAE,
    patches_audio: torch.Tensor | Sequence,
    output_dir: str | Path,
    *,
    tags: Sequence[str] | None = None,
    inverter: MelInverter | None = None,
    step_or_epoch: int = 0,
    seed: int = 0,
    examples: int = 4,
    samples: int = 4,
    projections: Sequence[str] = ("tsne", "umap"),
) -> dict[str, Any]:
    """Write the checks of `model` on `patches_audio` ((N, C, T) or a list of clips, each
    cropped or padded to one patch) into `output_dir` (created) and return what was written:

    - `reconstructions`: for the first `examples` patches, a PNG of input vs reconstructed
      log-mel and three WAVs: the input patch, the input's mel through `inverter` (what the
      inverter alone makes of it) and the reconstruction through `inverter`;
    - `projections`: per method in `projections` ("tsne", "umap"), the PNG of the posterior
      means' map (`helius.explore.soundmap.project`, which lowers t-SNE's perplexity and UMAP's
      neighbours for small N) coloured by `tags` and the legend's labels; with N < 3 no map,
      and a `note` says why;
    - `samples`: `samples` novel clips from the prior (seeded by `seed`) as WAVs and a PNG grid
      of their log-mel;
    - `sparsity` (see the module's docstring), `latent_stats`, `notes`, and `summary`: a JSON of
      this dict beside the files.

    `inverter` None is Griffin-Lim over the model's mel features; `seed` also seeds the maps.
    """
    clips = _as_clips(patches_audio)
    count = len(clips)
    if count == 0:
        raise ValueError("visualize needs at least one patch of audio")
    tag_list = None if tags is None else [str(tag) for tag in tags]
    if tag_list is not None and len(tag_list) != count:
        raise ValueError(f"got {len(tag_list)} tags for {count} patches; give one per patch")
    unknown = [method for method in projections if method not in ("tsne", "umap")]
    if unknown:
        raise ValueError(f"unknown projections {unknown}; use 'tsne' and/or 'umap'")
    if step_or_epoch < 0:
        raise ValueError(f"step_or_epoch must be >= 0, got {step_or_epoch}")
    inverter = default_inverter(model) if inverter is None else inverter
    check_inverter(model, inverter)
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = f"{step_or_epoch:06d}"
    rate = model.sample_rate
    patch_samples = int(model.config.segment_length * rate)
    device = next(model.parameters()).device

    # One clip at a time through the features: clips may differ in length and channels.
    log_mel = torch.cat([model.features(clip[None].to(device)) for clip in clips])
    mu, logvar = model.encode(log_mel)
    rebuilt = model.decode(mu)
    notes: list[str] = []

    reconstructions = []
    shown = min(examples, count)
    inverted_inputs = invert(log_mel[:shown], inverter)
    inverted_rebuilt = invert(rebuilt[:shown], inverter)
    for index in range(shown):
        stem = folder / f"recon_{stamp}_{index}"
        entry = {
            "figure": _reconstruction_figure(
                log_mel[index].cpu().numpy(),
                rebuilt[index].cpu().numpy(),
                stem.with_name(stem.name + ".png"),
            ),
            "input": save_audio(
                stem.with_name(stem.name + "_input.wav"),
                clips[index][:, :patch_samples].numpy(),
                rate,
            ),
            "input_inverted": save_audio(
                stem.with_name(stem.name + "_input_inverted.wav"), inverted_inputs[index], rate
            ),
            "reconstruction": save_audio(
                stem.with_name(stem.name + "_reconstruction.wav"), inverted_rebuilt[index], rate
            ),
        }
        if tag_list is not None:
            entry["tag"] = tag_list[index]
        reconstructions.append(entry)

    maps: dict[str, dict[str, Any]] = {}
    for method in projections:
        if count < MIN_POINTS:
            note = f"{method} map skipped: {count} patch(es), a map needs at least {MIN_POINTS}"
            maps[method] = {"path": None, "legend": [], "note": note}
            notes.append(note)
            continue
        points = project(mu, method, seed)
        path = folder / f"latent_{method}_{stamp}.png"
        title = f"latent {'t-SNE' if method == 'tsne' else 'UMAP'} (step {step_or_epoch})"
        legend = _scatter_figure(points, tag_list, title, path)
        maps[method] = {"path": path, "legend": legend, "note": None}

    novel: dict[str, Any] = {"audio": [], "grid": None}
    if samples > 0:
        sampled = model.decode(prior_latents(model, samples, seed))
        for index, audio in enumerate(invert(sampled, inverter)):
            novel["audio"].append(save_audio(folder / f"samples_{stamp}_{index}.wav", audio, rate))
        novel["grid"] = _grid_figure(sampled.cpu().numpy(), folder / f"samples_{stamp}_grid.png")

    stats = latent_stats(mu, logvar)
    result: dict[str, Any] = {
        "output_dir": folder,
        "step": step_or_epoch,
        "count": count,
        "sample_rate": rate,
        "reconstructions": reconstructions,
        "projections": maps,
        "samples": novel,
        "sparsity": stats["sparsity"],
        "latent_stats": stats,
        "notes": notes,
    }
    summary = folder / f"summary_{stamp}.json"
    atomic_write_text(summary, json.dumps(_jsonable(result), indent=2) + "\n")
    result["summary"] = summary
    return result


def _tag_of(tags: dict[str, str]) -> str:
    """One label per patch for the maps: the data set's own label (genre, composer, folder)."""
    for key in ("genre", "composer", "folder"):
        if key in tags:
            return tags[key]
    return next(iter(tags.values()), "untagged")


def validation_patches(
    index: str | Path, sample_rate: int, segment_length: float, limit: int = 256
) -> tuple[list[torch.Tensor], list[str]]:
    """The first patch of up to `limit` segments of a prepared index (evenly spread over it) and
    each one's source tag (`_tag_of` of `helius.harmonic.datasets.source_tags`)."""
    from helius.data.dataset import SegmentDataset
    from helius.harmonic.datasets import source_tags

    index = Path(index)
    lines = [line.strip() for line in index.read_text().splitlines() if line.strip()]
    dataset = SegmentDataset(index, sample_rate, int(segment_length * sample_rate), 1, False)
    picks = np.linspace(0, len(dataset) - 1, min(limit, len(dataset))).round().astype(int)
    picks = sorted(set(picks.tolist()))
    tags = source_tags(index)
    return [dataset[i] for i in picks], [_tag_of(tags.get(lines[i], {})) for i in picks]


def visualize_checkpoint(
    checkpoint: str | Path,
    output_dir: str | Path,
    vocoder: str | Path | None = None,
    iterations: int = 64,
    seed: int = 0,
    index: str | Path | None = None,
    limit: int = 256,
) -> Path:
    """`visualize` a trained mel VAE on patches of `index` (default: the validation index its
    run was trained with, else its training index) into `output_dir`, numbered by its epoch."""
    from helius.errors import DataError
    from helius.harmonic.inverters import inverter_for, load_mel_vae
    from helius.models.checkpoint import checkpoint_config, load_checkpoint

    payload = load_checkpoint(checkpoint, kind="mel_vae")
    config = checkpoint_config(payload, checkpoint)
    if index is None:
        index = config.data.val_index or config.data.train_index
    if not Path(index).is_file():
        raise DataError(
            f"index {index} (the data {checkpoint} was trained on) is not there; give the "
            "prepared data with --dataset_dir (or --output_dir of --mode preprocess)"
        )
    model = load_mel_vae(checkpoint)
    patches, tags = validation_patches(index, model.sample_rate, model.config.segment_length, limit)
    inverter = inverter_for(model, vocoder, iterations)
    epoch = int(payload.get("epoch", 0) or 0)
    visualize(
        model, patches, output_dir, tags=tags, inverter=inverter, step_or_epoch=epoch, seed=seed
    )
    return Path(output_dir)
