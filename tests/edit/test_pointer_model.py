"""The Audio Editor's pointer network (`helius.edit.model`, `helius.edit.task`): shapes and
masks, a causal decoder, KV-cache generation equal to teacher forcing, pointers always inside
the raw, a tiny model that learns an edit through the shared trainer, and its config's errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import write

from helius.audio.beats import BeatGrid
from helius.config import load_config, validate_config
from helius.edit.model import NEG, build
from helius.edit.ops import PAD_TOKEN, STOP_TOKEN, EditOp, ops_from_pointers
from helius.edit.task import PointerEditorTask, beat_positions, collate, crop, smoothed_ce
from helius.errors import ConfigError
from helius.train.trainer import fit

RATE, HOP, FRAMES, BEAT = 22050, 256, 64, 8  # a beat every 8 frames: bars of 32
EDITS = {  # two cut-and-loop edits of 40 frames each
    "a": [*range(0, 16), *range(8, 16), *range(40, 56)],
    "b": [*range(4, 28), *range(44, 52), *range(44, 52)],
}


def tiny_raw(config: dict, **model) -> object:
    return validate_config(
        {
            "data": {"n_fft": 512, "n_mels": 16, "min_seconds": 0.1, **config},
            "model": {
                "kind": "pointer_editor",
                "d_model": 32,
                "heads": 2,
                "encoder_layers": 1,
                "decoder_layers": 1,
                "window": 16,
                "latent_dim": 4,
                "dropout": 0.0,
                **model,
            },
        }
    )


def tiny_model(seed: int = 0):
    torch.manual_seed(seed)
    return build(tiny_raw({})).eval()


def grid(audio: np.ndarray, sample_rate: int) -> BeatGrid:
    """A beat every BEAT frames from frame 0 (stands in for librosa's tracker)."""
    seconds = len(audio) / sample_rate
    return BeatGrid(np.arange(0, seconds, BEAT * HOP / sample_rate), 0, 4)


def positions(frames: int) -> torch.Tensor:
    return torch.arange(frames, dtype=torch.float32)[None] / BEAT


def tone_track(seed: int) -> np.ndarray:
    """FRAMES frames of a log sweep (a different tone in every frame)."""
    t = np.arange((FRAMES - 1) * HOP) / RATE
    low, high = (200.0, 4000.0) if seed == 0 else (3000.0, 300.0)
    freq = low * (high / low) ** (t / t[-1])
    return (0.5 * np.sin(2 * np.pi * np.cumsum(freq) / RATE)).astype(np.float32)


@pytest.fixture(scope="module")
def pairs_dir(tmp_path_factory) -> Path:
    """Two raw/edit pairs with pointer files, as `helius edit synth` writes them."""
    root = tmp_path_factory.mktemp("editor_pairs")
    for seed, (name, edit) in enumerate(EDITS.items()):
        raw = tone_track(seed)
        audio = np.concatenate([raw[p * HOP : (p + 1) * HOP] for p in edit])
        pointers = np.array([*edit, STOP_TOKEN])
        write(root / "input" / f"{name}_raw.wav", raw[None], RATE)
        write(root / "desired_output" / f"{name}_edit.wav", audio[None], RATE)
        (root / "pointer_sequences").mkdir(exist_ok=True)
        np.savez(
            root / "pointer_sequences" / f"{name}.npz",
            pointers=pointers,
            ops=ops_from_pointers(pointers),
            gains=np.ones(len(pointers)),
            hop_samples=np.int64(HOP),
            sample_rate=np.int64(RATE),
        )
    return root


def test_shapes_and_masks_of_a_padded_batch():
    model = tiny_model()
    items = []
    for frames, steps in ((FRAMES, 10), (40, 6)):
        items.append(
            {
                "raw_mel": torch.randn(16, frames) - 5,
                "positions": positions(frames)[0],
                "edit_mel": torch.randn(16, steps) - 5,
                "pointers": torch.tensor([*range(steps - 1), STOP_TOKEN]),
                "ops": torch.tensor([0] * (steps - 1) + [int(EditOp.STOP)]),
                "length_ratio": torch.tensor(0.5),
                "raw_frames": torch.tensor(frames),
            }
        )
    batch = collate(items)
    assert batch["pointers"][1, 6:].eq(PAD_TOKEN).all() and batch["raw_mask"][1].sum() == 40
    out = PointerEditorTask(tiny_raw({})).forward(model, batch)
    assert out["frame"].shape == (2, 10, FRAMES)
    assert out["beat"].shape == (2, 10, FRAMES // BEAT) and out["bar"].shape == (2, 10, 2)
    assert out["op"].shape == (2, 10, len(EditOp)) and out["stop"].shape == (2, 10)
    assert out["length"].shape == (2,) and out["mu"].shape == (2, 4)
    # The shorter raw's padding frames, beats and bars can never be pointed at.
    assert (out["frame"][1, :, 40:] == NEG).all() and (out["frame"][1, :, :40] > NEG).all()
    assert (out["beat"][1, :, 5:] == NEG).all() and (out["bar"][1, :, 1:] > NEG).all()


def test_decoder_is_causal():
    model = tiny_model()
    mel, pos = torch.randn(1, 16, FRAMES) - 5, positions(FRAMES)
    pointers = torch.arange(12)[None]
    ops = torch.zeros_like(pointers)
    changed = pointers.clone()
    changed[0, 7:] = torch.tensor([50, 3, 60, 20, 1])
    edit = torch.randn(1, 16, 12) - 5  # the style's posterior mean: the same in both calls
    out = model(mel, pos, pointers, ops, edit_mel=edit)
    other = model(mel, pos, changed, ops, edit_mel=edit)
    # Step t's input is pointer t - 1: steps 0..7 saw only pointers 0..6, which are the same.
    for head in ("frame", "op", "stop"):
        torch.testing.assert_close(out[head][:, :8], other[head][:, :8])
        assert not torch.allclose(out[head][:, 8:], other[head][:, 8:])


def test_cached_generation_matches_teacher_forcing():
    model = tiny_model(seed=3)
    mel, pos = torch.randn(1, 16, FRAMES) - 5, positions(FRAMES)
    generated = model.generate(mel, pos, max_frames=12, seed=5, temperature=0.0)
    pointers, ops = generated["pointers"][None], generated["ops"][None]
    assert pointers.shape[1] == 12 and not generated["stopped"]
    memory = model.encode(mel, pos)
    z, _, _ = model.style(memory, generator=torch.Generator().manual_seed(5))
    inputs = model.step_inputs(memory, z, pointers, ops)
    hidden, _ = model.decode(memory, inputs)
    out = model.heads(memory, hidden)
    assert torch.equal(out["frame"][0, :12].argmax(-1), pointers[0])
    assert torch.equal(out["op"][0, :12].argmax(-1), ops[0])
    # The cache, step by step, gives the whole sequence's hidden states.
    caches, steps = None, []
    for t in range(inputs.shape[1]):
        step, caches = model.decode(memory, inputs[:, t : t + 1], caches, offset=t)
        steps.append(step)
    torch.testing.assert_close(torch.cat(steps, 1), hidden, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("coarse_to_fine", [False, True])
def test_generated_pointers_stay_inside_the_raw(coarse_to_fine):
    model = tiny_model(seed=1)
    for frames in (FRAMES, 37):
        mel = torch.randn(1, 16, frames) - 5
        out = model.generate(mel, positions(frames), 40, seed=2, coarse_to_fine=coarse_to_fine)
        pointers = out["pointers"]
        assert len(pointers) == 40 and pointers.dtype == torch.long
        assert pointers.min() >= 0 and pointers.max() < frames
        assert len(set(pointers.tolist())) > 5  # sampled, not stuck on one frame


def test_beat_positions_count_beats_and_extrapolate():
    grid = BeatGrid(np.array([1.0, 2.0, 3.0]), first_downbeat=1, beats_per_bar=4)
    got = beat_positions(grid, 8, sample_rate=2, hop=1)  # beats at frames 2, 4, 6
    np.testing.assert_allclose(got, [-2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5])
    assert beat_positions(BeatGrid(np.array([0.5])), 4, 2, 1).tolist() == [0, 0, 0, 0]


def test_smoothed_ce_matches_torch_and_ignores_masked_classes():
    logits, target = torch.randn(2, 5, 6), torch.tensor([[0, 1, 2, 3, -1], [5, 4, -1, -1, -1]])
    expected = F.cross_entropy(
        logits.reshape(-1, 6), target.reshape(-1), ignore_index=-1, label_smoothing=0.1
    )
    got = smoothed_ce(logits, target, torch.ones(1, 1, 6, dtype=torch.bool), 0.1)
    torch.testing.assert_close(got, expected)
    valid = torch.tensor([True] * 4 + [False] * 2)
    masked = smoothed_ce(logits[:1, :4].masked_fill(~valid, NEG), target[:1, :4], valid, 0.1)
    torch.testing.assert_close(
        masked, F.cross_entropy(logits[0, :4, :4], target[0, :4], label_smoothing=0.1)
    )


def test_crops_stay_inside_their_window():
    edit = np.array(EDITS["a"])
    pair = {
        "raw_mel": torch.randn(16, FRAMES), "positions": positions(FRAMES)[0],
        "edit_mel": torch.randn(16, len(edit)), "pointers": edit,
        "ops": ops_from_pointers(edit),
    }  # fmt: skip
    whole = crop(pair, 64, None)
    assert whole["pointers"].tolist() == [*edit, STOP_TOKEN] and whole["ops"][-1] == EditOp.STOP
    for seed in range(20):
        item = crop(pair, 16, np.random.default_rng(seed))
        steps = item["pointers"]
        body = steps[steps >= 0]
        assert item["raw_mel"].shape == (16, 16) and 1 <= len(steps) <= 17
        assert body.min() >= 0 and body.max() < 16 and len(item["edit_mel"][0]) == len(body)
        assert (steps[-1] == STOP_TOKEN) == (item["ops"][-1] == EditOp.STOP)


def test_a_tiny_editor_learns_a_cut_and_a_loop(pairs_dir, tmp_path):
    config = tiny_raw({"data_dir": str(pairs_dir), "max_raw_frames": 64, "val_pairs": 0})
    train = {
        "batch_size": 2, "learning_rate": 3e-3, "warmup_steps": 0, "lr_schedule": "constant",
        "max_steps": 120, "val_every_steps": 10_000, "device": "cpu", "tensorboard": False,
        "amp": False, "checkpoint_every_epochs": 1000, "checkpoint_dir": str(tmp_path / "ck"),
        "log_dir": str(tmp_path / "runs"),
    }  # fmt: skip
    config = validate_config({**config.model_dump(), "train": train})
    task = PointerEditorTask(config, grid_for=grid)
    result = fit(config, task)
    metrics = result.last_validation
    # Copying the raw as it is gets the frames before the first jump: 16 of 40, 0 of 40.
    assert metrics["copy_accuracy"] == pytest.approx(16 / 80)
    # Continuing from the previous pointer (from frame 0 at the start) misses the jumps and
    # b's start (2 + 3 of 80 frames): to beat it the model must know where each edit jumps.
    assert metrics["continue_accuracy"] == pytest.approx(1 - 5 / 80)
    assert metrics["pointer_accuracy"] > metrics["continue_accuracy"]
    assert metrics["pointer_within5"] >= metrics["pointer_accuracy"]
    assert metrics["op_accuracy"] > 0.8 and metrics["stop_recall"] == 1.0
    assert result.losses[-1] < result.losses[0] / 2
    assert (tmp_path / "ck" / "last.pt").is_file()
    # Free-running and greedy, from the raw alone, it writes each edit and stops.
    model = result.model.eval()
    train_set, _ = task.datasets()
    for pair, edit in zip(train_set.pairs, EDITS.values(), strict=True):
        out = model.generate(pair["raw_mel"][None], pair["positions"][None], 60, temperature=0)
        assert out["stopped"] and out["pointers"].tolist() == edit


def test_config_refuses_unknown_keys_and_loads_the_mini_preset():
    with pytest.raises(ConfigError, match=r"model\.d_modle: unknown key.*valid keys here: kind"):
        validate_config({"model": {"kind": "pointer_editor", "d_modle": 32}})
    with pytest.raises(ConfigError, match=r"multiple of 2 x heads"):
        validate_config({"model": {"kind": "pointer_editor", "d_model": 36, "heads": 4}})
    default = validate_config({"model": {"kind": "pointer_editor"}})
    assert (default.model.d_model, default.model.heads, default.train.stop_weight) == (256, 8, 0.5)
    mini = load_config(Path(__file__).parents[2] / "configs" / "editor_mini.yaml")
    assert (mini.model.d_model, mini.model.encoder_layers, mini.model.decoder_layers) == (128, 2, 2)


def test_edit_train_command_trains_from_a_folder(pairs_dir, tmp_path, monkeypatch, capsys):
    from helius.cli import main

    monkeypatch.setattr(
        PointerEditorTask, "_track_beats", lambda self, audio, rate: grid(audio, rate)
    )
    sets = [
        "data.n_fft=512", "data.n_mels=16", "data.min_seconds=0.1", "data.val_pairs=1",
        "model.d_model=16", "model.heads=2", "model.encoder_layers=1", "model.decoder_layers=1",
        "train.max_steps=3", "train.batch_size=1", "train.device=cpu", "train.tensorboard=false",
        f"train.checkpoint_dir={tmp_path / 'ck'}", f"train.log_dir={tmp_path / 'runs'}",
    ]  # fmt: skip
    args = ["edit", "train", "--data_dir", str(pairs_dir), "--mini", "--quiet", "--threads", "1"]
    assert main([*args, *(item for value in sets for item in ("--set", value))]) == 0
    printed = capsys.readouterr().out
    assert "trained pointer_editor to step 3" in printed and "pointer_accuracy" in printed
    assert (tmp_path / "ck" / "last.pt").is_file()
    empty = tmp_path / "no_pointers"
    for folder, suffix in (("input", "raw"), ("desired_output", "edit")):
        write(empty / folder / f"x_{suffix}.wav", tone_track(0)[None], RATE)
    assert main(["edit", "train", "--data_dir", str(empty), "--set", "data.min_seconds=0.1"]) == 1
    assert "no pair has a pointer sequence" in capsys.readouterr().err
