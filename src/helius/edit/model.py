"""The Audio Editor's pointer network (model kind `pointer_editor`): it reads a raw track's
log-mel frames with their beat positions and writes an edit as a sequence of pointers back into
those frames, with an edit op per frame, a stop decision and a predicted length.

Beat positions are one float per raw frame: the beat count at that frame, so that integers are
beats and multiples of `beats_per_bar` are downbeats (the task derives them from a `BeatGrid`).
From them come each frame's beat and bar index, its phase in the beat, its beat in the bar and
its bar in a phrase of `bars_per_phrase` bars.

Encoder: frame projection plus music-position features, then per layer a non-causal local-window
`TransformerBlock` and a cross-attention to the beat and bar summaries (means of the frames of
each beat and bar), which carry context beyond the window. Style: a VAE latent whose posterior
reads the pooled raw and edit mel at training; the prior N(0, I) at inference. Decoder: causal
`TransformerBlock`s over the edit so far (input: the encoder's features at the previous pointer,
the previous op's embedding and the style), each followed by a cross-attention to the encoder.
Heads: bar, beat and frame pointer logits (dot products with the bar/beat summaries and the
frames), edit op (7 classes), stop (one logit) and log(edit length / raw length).

Limits of this first version: the shared block has no key padding mask, so in a padded batch
the encoder's last `window` frames of a shorter raw also see padding frames (crops of equal
length avoid it); generation recomputes the cross-attention keys of the memory at every step.
Call `generate` in eval mode (dropout off).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from helius.edit.config import PointerEditorConfig, PointerEditorModelConfig
from helius.edit.ops import EditOp
from helius.nn.attention import TransformerBlock, empty_cache

__all__ = ["CrossAttention", "PointerEditor", "beat_structure", "build"]

LOG_CENTRE, LOG_SCALE = -5.0, 4.0  # log magnitudes of music to roughly [-2, 1]
INIT_GAIN = 0.5  # Xavier gain below 1: small residual updates at the start keep training calm
NEG = -1e9  # the logit of a target that cannot be chosen (finite: masked softmaxes stay real)
STOP_PRIOR_LOGIT = -4.0
PHASE_HARMONICS = 4  # sin/cos of the phase in the beat at 1..4 cycles per beat
# Pointer levels: head name -> the memory it points into and that memory's mask.
LEVELS = {"frame": ("frames", "mask"), "beat": ("beats", "beat_mask"), "bar": ("bars", "bar_mask")}


def beat_structure(positions: torch.Tensor, beats_per_bar: int, bars_per_phrase: int) -> dict:
    """(B, T) beat positions -> per-frame beat and bar indices (from 0 at each item's first
    frame), phase in the beat, beat in the bar and bar in the phrase."""
    beat = torch.floor(positions).long()
    bar = torch.div(beat, beats_per_bar, rounding_mode="floor")
    return {
        "beat": beat - beat[:, :1],
        "bar": bar - bar[:, :1],
        "phase": positions - torch.floor(positions),
        "beat_in_bar": torch.remainder(beat, beats_per_bar),
        "bar_in_phrase": torch.remainder(bar, bars_per_phrase),
    }


def _pool(x: torch.Tensor, index: torch.Tensor, mask: torch.Tensor, groups: int):
    """Means of x (B, T, D) over the frames of each group index (B, T) -> (B, groups, D) and
    which groups have frames (B, groups)."""
    one_hot = F.one_hot(index.clamp(0, groups - 1), groups).to(x.dtype) * mask[..., None]
    counts = one_hot.sum(dim=1)  # (B, groups)
    sums = torch.einsum("btg,btd->bgd", one_hot, x)
    return sums / counts.clamp_min(1.0)[..., None], counts > 0


class CrossAttention(nn.Module):
    """Pre-norm multi-head attention from queries to a fixed memory, added to the residual."""

    def __init__(self, width: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads, self.head_width = heads, width // heads
        self.norm = nn.LayerNorm(width)
        self.query = nn.Linear(width, width)
        self.key_value = nn.Linear(width, 2 * width)
        self.out = nn.Linear(width, width)
        self.dropout = nn.Dropout(dropout)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.size(0), x.size(1), self.heads, self.head_width).transpose(1, 2)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor):
        """x (B, T, D) attends over memory (B, S, D) where memory_mask (B, S) is True."""
        q = self._split(self.query(self.norm(x)))
        k, v = (self._split(part) for part in self.key_value(memory).chunk(2, dim=-1))
        mask = memory_mask[:, None, None, :]
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return x + self.dropout(self.out(attended.transpose(1, 2).flatten(2)))


class PointerEditor(nn.Module):
    def __init__(self, config: PointerEditorModelConfig, n_mels: int) -> None:
        super().__init__()
        d, heads, p = config.d_model, config.heads, config.dropout
        self.config = config
        self.frame_in = nn.Linear(n_mels, d)
        self.beat_in_bar = nn.Embedding(config.beats_per_bar, d)
        self.bar_in_phrase = nn.Embedding(config.bars_per_phrase, d)
        self.phase_in = nn.Linear(2 * PHASE_HARMONICS, d)
        self.encoder = nn.ModuleList(
            TransformerBlock(d, heads, p, causal=False) for _ in range(config.encoder_layers)
        )
        self.summary_attention = nn.ModuleList(
            CrossAttention(d, heads, p) for _ in range(config.encoder_layers)
        )
        self.encoder_norm = nn.LayerNorm(d)
        self.edit_in = nn.Linear(n_mels, d)
        self.posterior = nn.Sequential(
            nn.Linear(2 * d, d), nn.GELU(), nn.Linear(d, 2 * config.latent_dim)
        )
        self.style_in = nn.Linear(config.latent_dim, d)
        self.start = nn.Parameter(torch.zeros(d))
        self.op_in = nn.Embedding(len(EditOp), d)
        self.decoder = nn.ModuleList(
            TransformerBlock(d, heads, p, causal=True) for _ in range(config.decoder_layers)
        )
        self.memory_attention = nn.ModuleList(
            CrossAttention(d, heads, p) for _ in range(config.decoder_layers)
        )
        self.decoder_norm = nn.LayerNorm(d)
        # One query/key pair per level of the pointer: the raw's frames, beats and bars.
        self.pointer_query = nn.ModuleDict({level: nn.Linear(d, d) for level in LEVELS})
        self.pointer_key = nn.ModuleDict({level: nn.Linear(d, d) for level in LEVELS})
        self.op_head = nn.Linear(d, len(EditOp))
        self.stop_head = nn.Linear(d, 1)
        self.length_head = nn.Sequential(nn.Linear(2 * d, d), nn.GELU(), nn.Linear(d, 1))
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight, gain=INIT_GAIN)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)
        # An edit stops once in hundreds of frames: start the stop head there, not at 50 %.
        nn.init.constant_(self.stop_head.bias, STOP_PRIOR_LOGIT)

    # ---- encoder --------------------------------------------------------------------------

    def encode(self, raw_mel: torch.Tensor, positions: torch.Tensor, raw_mask=None) -> dict:
        """raw_mel (B, n_mels, T), positions (B, T), raw_mask (B, T) bool (None: all frames)
        -> the encoder's memory: frames, beat and bar summaries, their indices and masks."""
        cfg = self.config
        mask = raw_mask if raw_mask is not None else torch.ones_like(positions, dtype=torch.bool)
        music = beat_structure(positions, cfg.beats_per_bar, cfg.bars_per_phrase)
        cycles = torch.arange(1, PHASE_HARMONICS + 1, device=positions.device)
        angles = 2 * math.pi * music["phase"][..., None] * cycles
        x = self.frame_in(((raw_mel - LOG_CENTRE) / LOG_SCALE).transpose(1, 2))
        x = x + self.beat_in_bar(music["beat_in_bar"]) + self.bar_in_phrase(music["bar_in_phrase"])
        x = x + self.phase_in(torch.cat([angles.sin(), angles.cos()], dim=-1))
        beat_index = torch.where(mask, music["beat"], 0)
        bar_index = torch.where(mask, music["bar"], 0)
        beats, bars = int(beat_index.max()) + 1, int(bar_index.max()) + 1
        empty = empty_cache(x.size(0), cfg.heads, cfg.d_model // cfg.heads, x)
        for block, summary in zip(self.encoder, self.summary_attention, strict=True):
            x = block(x, empty, empty, 0, cfg.window)[0]
            beat_sum, beat_ok = _pool(x, beat_index, mask, beats)
            bar_sum, bar_ok = _pool(x, bar_index, mask, bars)
            x = summary(x, torch.cat([beat_sum, bar_sum], 1), torch.cat([beat_ok, bar_ok], 1))
        x = self.encoder_norm(x)
        beat_sum, beat_ok = _pool(x, beat_index, mask, beats)
        bar_sum, bar_ok = _pool(x, bar_index, mask, bars)
        pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp_min(1)
        return {
            "frames": x, "mask": mask, "beats": beat_sum, "beat_mask": beat_ok, "bars": bar_sum,
            "bar_mask": bar_ok, "beat_index": beat_index, "bar_index": bar_index, "pooled": pooled,
        }  # fmt: skip

    def style(self, memory: dict, edit_mel=None, edit_mask=None, generator=None):
        """(z, mu, logvar): from the posterior given the edit's mel, else a prior draw (mu and
        logvar None); in eval mode the posterior gives its mean."""
        pooled = memory["pooled"]
        latent = self.config.latent_dim
        if edit_mel is None:
            shape = (pooled.size(0), latent)
            z = torch.randn(shape, generator=generator, device=pooled.device, dtype=pooled.dtype)
            return z, None, None
        edit = self.edit_in(((edit_mel - LOG_CENTRE) / LOG_SCALE).transpose(1, 2))
        if edit_mask is None:
            edit_mask = torch.ones(edit.shape[:2], dtype=torch.bool, device=edit.device)
        count = edit_mask.sum(1, keepdim=True).clamp_min(1)
        edit_pooled = (edit * edit_mask[..., None]).sum(1) / count
        mu, logvar = self.posterior(torch.cat([pooled, edit_pooled], -1)).chunk(2, dim=-1)
        logvar = logvar.clamp(-10.0, 10.0)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
        return z, mu, logvar

    # ---- decoder --------------------------------------------------------------------------

    def step_inputs(self, memory: dict, z: torch.Tensor, pointers, ops) -> torch.Tensor:
        """Decoder inputs (B, N + 1, D): a start frame, then for each given step the encoder's
        features at its pointer plus its op's embedding; the style added to every one."""
        frames = memory["frames"]
        batch = frames.size(0)
        start = self.start.expand(batch, 1, -1)
        if pointers.size(1):
            index = pointers.clamp(0, frames.size(1) - 1)
            picked = torch.gather(frames, 1, index[..., None].expand(-1, -1, frames.size(-1)))
            steps = picked + self.op_in(ops.clamp(0, len(EditOp) - 1))
            start = torch.cat([start, steps], dim=1)
        return start + self.style_in(z)[:, None]

    def decode(self, memory: dict, inputs: torch.Tensor, caches=None, offset: int = 0):
        """Causal decoder over inputs (B, N, D) at positions offset.. -> (hidden, caches)."""
        cfg = self.config
        if caches is None:
            empty = empty_cache(inputs.size(0), cfg.heads, cfg.d_model // cfg.heads, inputs)
            caches = [(empty, empty)] * len(self.decoder)
        new_caches = []
        x = inputs
        for block, cross, (keys, values) in zip(
            self.decoder, self.memory_attention, caches, strict=True
        ):
            x, keys, values = block(x, keys, values, offset, 0)
            x = cross(x, memory["frames"], memory["mask"])
            new_caches.append((keys, values))
        return self.decoder_norm(x), new_caches

    def heads(self, memory: dict, hidden: torch.Tensor) -> dict:
        """Logits of every head at each decoder step: frame (B, N, T), beat (B, N, beats),
        bar (B, N, bars) pointers (impossible targets NEG), op (B, N, 7), stop (B, N)."""
        scale = hidden.size(-1) ** -0.5
        out = {}
        for level, (key, mask) in LEVELS.items():
            query = self.pointer_query[level](hidden)
            scores = torch.einsum("bnd,bsd->bns", query, self.pointer_key[level](memory[key]))
            out[level] = (scores * scale).masked_fill(~memory[mask][:, None, :], NEG)
        out["op"] = self.op_head(hidden)
        out["stop"] = self.stop_head(hidden).squeeze(-1)
        return out

    def length(self, memory: dict, z: torch.Tensor) -> torch.Tensor:
        """Predicted log(edited frames / raw frames) (B,)."""
        return self.length_head(torch.cat([memory["pooled"], self.style_in(z)], -1)).squeeze(-1)

    def forward(self, raw_mel, positions, pointers, ops, raw_mask=None, edit_mel=None,
                edit_mask=None) -> dict:  # fmt: skip
        """Teacher-forced: raw (B, n_mels, T) and the edit's first N pointers and ops (B, N)
        -> every head's logits over N + 1 steps (step t predicts pointer t), the length, the
        style posterior's mu and logvar (None without edit_mel) and the encoder `memory`."""
        memory = self.encode(raw_mel, positions, raw_mask)
        z, mu, logvar = self.style(memory, edit_mel, edit_mask)
        hidden, _ = self.decode(memory, self.step_inputs(memory, z, pointers, ops))
        out = self.heads(memory, hidden)
        out.update(length=self.length(memory, z), mu=mu, logvar=logvar, memory=memory)
        return out

    @torch.no_grad()
    def generate(self, raw_mel, positions, max_frames: int, seed: int = 0,
                 temperature: float = 1.0, coarse_to_fine: bool = False) -> dict:  # fmt: skip
        """Free-running edit of one raw track (batch 1) with the decoder's KV cache: pointers
        (N,) always inside the raw, ops (N,), and whether it stopped before max_frames.
        Style comes from the prior (seeded); pointers are sampled at `temperature` (0:
        greedy). coarse_to_fine: the bar, then a beat of it, then a frame of that beat."""
        generator = torch.Generator(device=raw_mel.device).manual_seed(seed)
        memory = self.encode(raw_mel, positions)
        z, _, _ = self.style(memory, generator=generator)
        x = self.step_inputs(memory, z, raw_mel.new_zeros(1, 0).long(), None)
        caches, pointers, ops, stopped = None, [], [], False
        for step in range(max_frames):
            hidden, caches = self.decode(memory, x, caches, offset=step)
            out = self.heads(memory, hidden[:, -1:])
            if torch.sigmoid(out["stop"][0, 0]) > 0.5:
                stopped = True
                break
            frame_logits = out["frame"][0, 0]
            if coarse_to_fine:
                bar = self._choose(out["bar"][0, 0], temperature, generator)
                beat_logits = out["beat"][0, 0].masked_fill(
                    ~_members(memory["beat_index"], memory["bar_index"], bar), NEG
                )
                beat = self._choose(beat_logits, temperature, generator)
                frame_logits = frame_logits.masked_fill(memory["beat_index"][0] != beat, NEG)
            pointer = self._choose(frame_logits, temperature, generator)
            op = int(out["op"][0, 0].argmax())
            pointers.append(pointer)
            ops.append(op)
            index = torch.tensor([[pointer]], device=raw_mel.device)
            x = self.step_inputs(memory, z, index, torch.tensor([[op]], device=raw_mel.device))
            x = x[:, 1:]
        return {"pointers": torch.tensor(pointers, dtype=torch.long),
                "ops": torch.tensor(ops, dtype=torch.long), "stopped": stopped}  # fmt: skip

    @staticmethod
    def _choose(logits: torch.Tensor, temperature: float, generator) -> int:
        if temperature <= 0:
            return int(logits.argmax())
        probs = torch.softmax(logits / temperature, dim=-1)
        return int(torch.multinomial(probs, 1, generator=generator))


def _members(beat_index: torch.Tensor, bar_index: torch.Tensor, bar: int) -> torch.Tensor:
    """(beats,) bool: which beats of item 0 lie in bar `bar`."""
    beats = int(beat_index.max()) + 1
    inside = torch.zeros(beats, dtype=torch.bool, device=beat_index.device)
    inside[beat_index[0][bar_index[0] == bar]] = True
    return inside


def build(config: PointerEditorConfig) -> PointerEditor:
    """The untrained editor a validated config describes."""
    return PointerEditor(config.model, config.data.n_mels)
