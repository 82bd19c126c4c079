"""The mel VAE's visual checks (`helius.harmonic.visualize`): the figures and audio it writes are
valid files, the maps carry one legend entry per tag, tiny sets skip the maps with a note, and
sparsity counts the dimensions whose KL is below the threshold."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from matplotlib.image import imread

from helius.harmonic.griffin_lim import GriffinLim
from helius.harmonic.mel_vae import MelVAE
from helius.harmonic.visualize import latent_stats, sparsity, visualize

RATE = 8000
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TAGS = ["tone", "noise", "tone", "chirp", "noise", "chirp"]


@pytest.fixture(scope="module")
def inverter(model: MelVAE) -> GriffinLim:
    return GriffinLim(model.mel, iterations=4, refine_iterations=10)


def patches(count: int) -> torch.Tensor:
    """(count, 1, 0.25 s) tones, noises and chirps in the order of TAGS."""
    rng = np.random.default_rng(0)
    t = np.arange(RATE // 4) / RATE
    clips = []
    for index in range(count):
        kind = TAGS[index % len(TAGS)]
        if kind == "tone":
            clip = 0.3 * np.sin(2 * np.pi * (250 + 100 * index) * t)
        elif kind == "noise":
            clip = 0.1 * rng.standard_normal(len(t))
        else:
            clip = 0.3 * np.sin(2 * np.pi * (300 + 4000 * t) * t)
        clips.append(clip)
    return torch.tensor(np.stack(clips), dtype=torch.float32)[:, None]


@pytest.fixture(scope="module")
def written(model, inverter, tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("visual") / "step"  # not there yet: visualize makes it
    return visualize(
        model, patches(6), folder, tags=TAGS, inverter=inverter, step_or_epoch=12, seed=1
    )


def assert_png(path) -> None:
    assert path.is_file() and path.read_bytes()[:8] == PNG_MAGIC
    image = imread(path)
    assert image.ndim == 3 and min(image.shape[:2]) > 50


def assert_wav(path, frames: int) -> None:
    audio, rate = sf.read(str(path), always_2d=True)
    assert rate == RATE and audio.shape[0] == frames and np.isfinite(audio).all()


def test_reconstruction_figures_and_their_audio_are_valid_files(written, model) -> None:
    assert written["step"] == 12 and written["count"] == 6
    reconstructions = written["reconstructions"]
    assert len(reconstructions) == 4  # a few examples, not all six
    inverted = (model.frames - 1) * model.config.hop_length
    for index, entry in enumerate(reconstructions):
        assert entry["figure"].name == f"recon_000012_{index}.png"
        assert entry["tag"] == TAGS[index]
        assert_png(entry["figure"])
        assert_wav(entry["input"], RATE // 4)
        assert_wav(entry["input_inverted"], inverted)
        assert_wav(entry["reconstruction"], inverted)
    assert len(written["samples"]["audio"]) == 4
    for path in written["samples"]["audio"]:
        assert_wav(path, inverted)
    assert_png(written["samples"]["grid"])
    # Atomic writes leave no temporary files behind.
    assert not [path for path in written["output_dir"].iterdir() if path.suffix == ".tmp"]


def test_maps_have_one_legend_entry_per_tag(written) -> None:
    for method in ("tsne", "umap"):
        entry = written["projections"][method]
        assert entry["note"] is None
        assert entry["path"].name == f"latent_{method}_000012.png"
        assert_png(entry["path"])
        assert entry["legend"] == ["tone", "noise", "chirp"]  # order of first appearance
    assert written["notes"] == []


def test_the_summary_and_statistics_match_the_encodings(written, model) -> None:
    summary = json.loads(written["summary"].read_text())
    assert summary["sparsity"] == written["sparsity"]
    assert summary["projections"]["tsne"]["legend"] == ["tone", "noise", "chirp"]
    stats = written["latent_stats"]
    assert stats["encodings"] == 6 and stats["latent_dim"] == model.latent_dim
    with torch.no_grad():
        mu, logvar = model.encode(model.features(patches(6)))
    assert written["sparsity"] == sparsity(mu, logvar)
    assert stats["kl_per_dim"] == pytest.approx(latent_stats(mu, logvar)["kl_per_dim"])


def test_without_tags_one_colour_and_no_legend(model, inverter, tmp_path) -> None:
    result = visualize(
        model, list(patches(4)[:, 0]), tmp_path, inverter=inverter, samples=1, projections=["tsne"]
    )
    assert result["projections"]["tsne"]["legend"] == []
    assert_png(result["projections"]["tsne"]["path"])
    assert "umap" not in result["projections"]
    assert "tag" not in result["reconstructions"][0]


@pytest.mark.parametrize("count", [1, 2])
def test_too_few_patches_skip_the_maps_with_a_note(model, inverter, tmp_path, count) -> None:
    result = visualize(
        model, patches(count), tmp_path, tags=TAGS[:count], inverter=inverter, samples=2
    )
    for method in ("tsne", "umap"):
        entry = result["projections"][method]
        assert entry["path"] is None and "at least 3" in entry["note"]
    assert len(result["notes"]) == 2
    assert len(result["reconstructions"]) == count
    assert not list(tmp_path.glob("latent_*"))
    assert 0.0 <= result["sparsity"] <= 1.0 and len(result["samples"]["audio"]) == 2


def test_bad_arguments_are_refused(model, inverter, tmp_path) -> None:
    with pytest.raises(ValueError, match="tags"):
        visualize(model, patches(3), tmp_path, tags=["a"], inverter=inverter)
    with pytest.raises(ValueError, match="projections"):
        visualize(model, patches(3), tmp_path, inverter=inverter, projections=["pca"])


def test_sparsity_counts_the_dimensions_below_the_kl_threshold() -> None:
    # KL of one dimension over N encodings: mean of 0.5 (mu^2 + e^logvar - 1 - logvar).
    n = 4
    mu = torch.zeros(n, 6)
    logvar = torch.zeros(n, 6)
    mu[:, 0] = torch.tensor([2.0, -2.0, 1.0, -1.0])  # KL 1.25: active
    logvar[:, 1] = -3.0  # KL 0.5 (e^-3 - 1 + 3) = 1.025: active
    mu[:, 2] = 0.1  # KL 0.005 < 0.01: inactive
    mu[:, 3] = 0.2  # KL 0.02 >= 0.01: active
    mu[:, 4] = 1.0  # KL 0.5: active by the KL, though mu never varies
    # dim 5: mu 0, logvar 0, the prior itself: KL 0, inactive
    assert sparsity(mu, logvar) == pytest.approx(2 / 6)
    assert sparsity(mu, logvar, threshold=0.03) == pytest.approx(3 / 6)
    assert sparsity(mu, logvar, threshold=1e-6) == pytest.approx(1 / 6)
    stats = latent_stats(mu, logvar)
    assert stats["kl_per_dim"] == pytest.approx([1.25, 0.5 * (np.exp(-3) + 2), 0.005, 0.02, 0.5, 0])
    assert stats["inactive_dims"] == [2, 5] and stats["active_dims"] == 4
    # Var(mu) is zero in dims 1 to 5: by that definition five of six are inactive.
    assert stats["variance_sparsity"] == pytest.approx(5 / 6)
    assert stats["mu_variance"][0] == pytest.approx(2.5)
