"""What training the pointer editor means: the pairs of a folder that have pointer sequences
(synth's `pointer_sequences/` or align's `aligned/`), their raw log-mel and beat positions
computed once and kept in memory, crops of at most `data.max_raw_frames` raw frames, the seed's
weighted objective, and a teacher-forced validation.

A crop keeps the raw window and the longest stretch of edited frames around a chosen one whose
pointers stay inside it; it ends with STOP only when the edit itself ends there, and its length
target stays the whole pair's (edited / raw frames). Gains are not learnt yet: fades are known
only through their FADE_IN / FADE_OUT ops.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from helius.audio import io
from helius.audio.beats import BeatGrid, track_beats
from helius.edit.config import PointerEditorConfig
from helius.edit.ops import PAD_TOKEN, STOP_TOKEN, EditOp
from helius.edit.pairs import find_pairs
from helius.errors import DataError
from helius.nn.mel import LOG_FLOOR, LogMel
from helius.train.loop import to_device
from helius.train.task import Task, Validation

__all__ = ["EditPairs", "PointerEditorTask", "beat_positions", "collate", "crop", "smoothed_ce"]

GridFunction = Callable[[np.ndarray, int], BeatGrid]
NEAR_FRAMES = 5  # "within 5" pointer accuracy: off by at most this many frames
POINTER_DIRS = ("pointer_sequences", "aligned")  # synthetic pairs' truth first, then alignments


def beat_positions(grid: BeatGrid, frames: int, sample_rate: int, hop: int) -> np.ndarray:
    """The beat count at each of `frames` analysis frames: integers at beats, multiples of
    beats_per_bar at downbeats; before the first and after the last beat the count goes on
    at the nearest beat interval. Fewer than two beats: all frames in beat 0."""
    beat_frames, first = np.unique(grid.beat_frames(sample_rate, hop), return_index=True)
    if len(beat_frames) < 2:
        return np.zeros(frames, dtype=np.float32)
    numbers = first.astype(np.float64) - grid.first_downbeat
    t = np.arange(frames, dtype=np.float64)
    positions = np.interp(t, beat_frames, numbers)
    head = (numbers[1] - numbers[0]) / (beat_frames[1] - beat_frames[0])
    tail = (numbers[-1] - numbers[-2]) / (beat_frames[-1] - beat_frames[-2])
    positions = np.where(t < beat_frames[0], numbers[0] + (t - beat_frames[0]) * head, positions)
    positions = np.where(t > beat_frames[-1], numbers[-1] + (t - beat_frames[-1]) * tail, positions)
    return positions.astype(np.float32)


class EditPairs(Dataset):
    """Pairs held in memory as tensors; items are crops (random per epoch when training)."""

    def __init__(self, pairs: list[dict], max_frames: int, random: bool, seed: int = 0):
        self.pairs, self.max_frames, self.random, self.seed = pairs, max_frames, random, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        pair = self.pairs[index]
        rng = np.random.default_rng([self.seed, self.epoch, index]) if self.random else None
        return crop(pair, self.max_frames, rng)


def crop(pair: dict, max_frames: int, rng: np.random.Generator | None) -> dict[str, Any]:
    """At most max_frames raw frames and edited steps of a pair (rng None: from the start)."""
    frames = pair["raw_mel"].shape[1]
    pointers, ops = pair["pointers"], pair["ops"]
    body = int((pointers >= 0).sum())  # edited frames before STOP
    start, a, b = 0, 0, body
    if frames > max_frames or body > max_frames:
        anchor = int(rng.integers(body)) if rng is not None else 0
        lead = int(rng.integers(max_frames)) if rng is not None else 0
        start = min(max(int(pointers[anchor]) - lead, 0), max(frames - max_frames, 0))
        inside = (pointers[:body] >= start) & (pointers[:body] < start + max_frames)
        a = anchor
        while a > 0 and inside[a - 1] and anchor - a + 1 < max_frames:
            a -= 1
        b = anchor + 1
        while b < body and inside[b] and b - a < max_frames:
            b += 1
    ends = b == body  # the edit stops here: keep its STOP
    window = slice(start, start + max_frames)
    steps = np.concatenate([pointers[a:b] - start, [STOP_TOKEN] if ends else []])
    step_ops = np.concatenate([ops[a:b], [int(EditOp.STOP)] if ends else []])
    return {
        "raw_mel": pair["raw_mel"][:, window],
        "positions": pair["positions"][window],
        "edit_mel": pair["edit_mel"][:, a : min(b, pair["edit_mel"].shape[1])],
        "pointers": torch.as_tensor(steps, dtype=torch.long),
        "ops": torch.as_tensor(step_ops, dtype=torch.long),
        "length_ratio": torch.tensor(body / frames),
        "raw_frames": torch.tensor(frames),
    }


def _pad(tensors: list[torch.Tensor], value: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad along the last axis -> (stacked, mask of real entries (B, longest))."""
    longest = max(t.shape[-1] for t in tensors)
    padded = [F.pad(t, (0, longest - t.shape[-1]), value=value) for t in tensors]
    mask = torch.zeros(len(tensors), longest, dtype=torch.bool)
    for row, t in enumerate(tensors):
        mask[row, : t.shape[-1]] = True
    return torch.stack(padded), mask


def collate(items: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Pad a batch: mels with the log floor, beat positions with their last value, pointers
    and ops with PAD_TOKEN; raw_mask and edit_mask mark real frames."""
    raw_mel, raw_mask = _pad([item["raw_mel"] for item in items], math.log(LOG_FLOOR))
    edit_mel, edit_mask = _pad([item["edit_mel"] for item in items], math.log(LOG_FLOOR))
    longest = raw_mel.shape[-1]
    positions = torch.stack(
        [
            torch.cat(
                [item["positions"], item["positions"][-1:].expand(longest - len(item["positions"]))]
            )
            for item in items
        ]
    )
    pointers, _ = _pad([item["pointers"] for item in items], PAD_TOKEN)
    ops, _ = _pad([item["ops"] for item in items], PAD_TOKEN)
    return {
        "raw_mel": raw_mel, "raw_mask": raw_mask, "positions": positions, "edit_mel": edit_mel,
        "edit_mask": edit_mask, "pointers": pointers, "ops": ops,
        "length_ratio": torch.stack([item["length_ratio"] for item in items]).float(),
        "raw_frames": torch.stack([item["raw_frames"] for item in items]),
    }  # fmt: skip


def smoothed_ce(logits, target, valid, smoothing: float) -> torch.Tensor:
    """Mean label-smoothed cross-entropy over steps whose target is >= 0; the smoothing mass
    spreads over the classes `valid` (broadcastable to logits) allows, never masked ones."""
    keep = target >= 0
    if not keep.any():
        return logits.sum() * 0.0
    log_p = torch.log_softmax(logits.float(), dim=-1)
    nll = -log_p.gather(-1, target.clamp_min(0)[..., None]).squeeze(-1)
    valid = valid.expand_as(log_p)
    uniform = -(log_p * valid).sum(-1) / valid.sum(-1).clamp_min(1)
    loss = (1 - smoothing) * nll + smoothing * uniform
    return loss[keep].mean()


class PointerEditorTask(Task):
    """Train the pointer editor on the pairs of `data.data_dir` that have pointer sequences."""

    name = "pointer_editor"
    kind = "pointer_editor"

    def __init__(self, config: PointerEditorConfig, grid_for: GridFunction | None = None):
        """`grid_for(audio, sample_rate)`: a raw track's beat grid (None: `track_beats`)."""
        self.config = config
        self.sample_rate = config.data.sample_rate
        self.grid_for = grid_for or self._track_beats

    def _track_beats(self, audio: np.ndarray, sample_rate: int) -> BeatGrid:
        hop = self.config.data.hop_length
        return track_beats(audio, sample_rate, self.config.model.beats_per_bar, hop)

    def build_model(self) -> nn.Module:
        from helius import registry

        return registry.get(self.kind).build(self.config)

    def batch_seconds(self, batch: Any) -> float:
        return float(batch["raw_mask"].sum()) * self.config.data.hop_length / self.sample_rate

    def collate(self, items: Sequence[Any]) -> Any:
        return collate(items)

    def load_pairs(self) -> list[dict]:
        """Every usable pair of the folder as tensors, in name order."""
        data = self.config.data
        root = Path(data.data_dir)
        report = find_pairs(root, data.min_seconds)
        mel = LogMel(data.sample_rate, data.n_fft, data.hop_length, data.n_mels)
        loaded = []
        for pair in report.pairs:
            found = [root / folder / f"{pair.name}.npz" for folder in POINTER_DIRS]
            found = [path for path in found if path.is_file()]
            if found:
                loaded.append(self._load_pair(pair.raw, pair.edit, found[0], mel))
        if not loaded:
            raise DataError(
                f"{root}: no pair has a pointer sequence ({' or '.join(POINTER_DIRS)}/NAME.npz);"
                " run `helius edit synth` or `helius edit align` first"
            )
        return loaded

    def _load_pair(self, raw_path: Path, edit_path: Path, pointer_path: Path, mel: LogMel):
        data = self.config.data
        with np.load(pointer_path) as stored:
            pointers, ops = stored["pointers"].astype(np.int64), stored["ops"].astype(np.int64)
            hop, rate = int(stored["hop_samples"]), int(stored["sample_rate"])
        if (hop, rate) != (data.hop_length, data.sample_rate):
            raise DataError(
                f"{pointer_path}: pointers at hop {hop}, {rate} Hz, but the config's frames are "
                f"hop {data.hop_length}, {data.sample_rate} Hz; set data.hop_length and "
                "data.sample_rate to the pointers'"
            )
        raw, _ = io.load(raw_path, data.sample_rate, mono=True)
        edit, _ = io.load(edit_path, data.sample_rate, mono=True)
        with torch.no_grad():
            raw_mel = mel(torch.from_numpy(raw))[0]
            edit_mel = mel(torch.from_numpy(edit))[0]
        frames = raw_mel.shape[1]
        body = pointers[pointers >= 0]
        if len(body) == 0 or body.max() >= frames:
            raise DataError(f"{pointer_path}: pointers outside the raw's {frames} frames")
        grid = self.grid_for(raw[0], data.sample_rate)
        positions = beat_positions(grid, frames, data.sample_rate, data.hop_length)
        return {
            "raw_mel": raw_mel, "edit_mel": edit_mel, "positions": torch.from_numpy(positions),
            "pointers": pointers[: len(body)], "ops": ops[: len(body)],
        }  # fmt: skip

    def datasets(self) -> tuple[Dataset, Dataset | None]:
        data, seed = self.config.data, self.config.train.seed
        pairs = self.load_pairs()
        held = data.val_pairs
        if held >= len(pairs):
            raise DataError(
                f"data.val_pairs {held} leaves no training pair of {len(pairs)}; lower it"
            )
        train = pairs[: len(pairs) - held] if held else pairs
        val = pairs[len(pairs) - held :] if held else pairs
        return EditPairs(train, data.max_raw_frames, True, seed), EditPairs(
            val, data.max_raw_frames, False
        )

    # ---- objective ----------------------------------------------------------------------

    def forward(self, model: nn.Module, batch: dict) -> dict:
        """Teacher-forced outputs: step t sees pointers and ops before t."""
        steps = batch["pointers"].shape[1]
        return model(
            batch["raw_mel"], batch["positions"], batch["pointers"][:, : steps - 1],
            batch["ops"][:, : steps - 1], batch["raw_mask"], batch["edit_mel"], batch["edit_mask"],
        )  # fmt: skip

    def objective(self, out: dict, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        train = self.config.train
        core = out["memory"]
        target = batch["pointers"]
        is_frame = target >= 0
        index = target.clamp_min(0)
        beat_target = torch.where(is_frame, core["beat_index"].gather(1, index), PAD_TOKEN)
        bar_target = torch.where(is_frame, core["bar_index"].gather(1, index), PAD_TOKEN)
        eps = train.label_smoothing
        parts = {
            "pointer": smoothed_ce(out["frame"], target, core["mask"][:, None], eps),
            "beat": smoothed_ce(out["beat"], beat_target, core["beat_mask"][:, None], eps),
            "bar": smoothed_ce(out["bar"], bar_target, core["bar_mask"][:, None], eps),
            "op": smoothed_ce(out["op"], batch["ops"], torch.ones_like(out["op"][:1, :1]), eps),
        }
        steps = target != PAD_TOKEN
        stop_bce = F.binary_cross_entropy_with_logits(
            out["stop"].float(), (target == STOP_TOKEN).float(), reduction="none"
        )
        parts["stop"] = stop_bce[steps].mean()
        parts["length"] = F.mse_loss(out["length"].float(), batch["length_ratio"].log())
        mu, logvar = out["mu"], out["logvar"]
        parts["kl"] = (0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)).sum(-1).mean()
        weights = {
            "pointer": train.pointer_weight, "beat": train.beat_weight, "bar": train.bar_weight,
            "op": train.op_weight, "stop": train.stop_weight, "length": train.length_weight,
            "kl": train.kl_weight,
        }  # fmt: skip
        total = sum(weights[name] * value for name, value in parts.items())
        return total, parts

    def loss(self, model: nn.Module, batch: dict, step: int):
        total, parts = self.objective(self.forward(model, batch), batch)
        return total, {name: float(value.detach()) for name, value in parts.items()}

    @torch.no_grad()
    def validate(self, model: nn.Module, batches: Iterator[dict]) -> Validation:
        """Teacher-forced: the objective, exact and within-5 pointer accuracy, the same for
        two baselines (copy the raw as it is: pointer t = t; continue: the previous pointer
        + 1), stop precision and recall, op accuracy and the length error in frames."""
        was_training = model.training
        model.eval()
        sums: dict[str, float] = {}
        counts: dict[str, float] = {}

        def add(name: str, hits: torch.Tensor) -> None:
            sums[name] = sums.get(name, 0.0) + float(hits.float().sum())
            counts[name] = counts.get(name, 0.0) + hits.numel()

        device = next(model.parameters()).device
        loss_sum, items = 0.0, 0
        for batch in batches:
            batch = to_device(batch, device)  # the trainer hands validation batches as loaded
            out = self.forward(model, batch)
            loss_sum += float(self.objective(out, batch)[0]) * len(batch["pointers"])
            items += len(batch["pointers"])
            target, ops = batch["pointers"], batch["ops"]
            frame = target >= 0
            guess = out["frame"].argmax(-1)
            steps = torch.arange(target.shape[1], device=target.device).expand_as(target)
            previous = F.pad(target[:, :-1], (1, 0), value=-1) + 1
            add("pointer_accuracy", (guess == target)[frame])
            add("pointer_within5", ((guess - target).abs() <= NEAR_FRAMES)[frame])
            add("copy_accuracy", (steps == target)[frame])
            add("continue_accuracy", (previous == target)[frame])
            stop_guess = (torch.sigmoid(out["stop"]) > 0.5) & (target != PAD_TOKEN)
            add("stop_precision", (target == STOP_TOKEN)[stop_guess])
            add("stop_recall", stop_guess[target == STOP_TOKEN])
            add("op_accuracy", (out["op"].argmax(-1) == ops)[ops >= 0])
            frames = batch["raw_frames"].float()
            error = (out["length"].exp() - batch["length_ratio"]).abs() * frames
            add("length_mae_frames", error)
        model.train(was_training)
        metrics = {name: sums[name] / max(counts[name], 1.0) for name in sums}
        score = loss_sum / max(items, 1)
        return Validation(score=score, metrics={**metrics, "loss": score})
