"""What training the mel VAE means: random `segment_length` crops of a prepared folder's
segments (optionally augmented), their log-mel patches through the VAE, the manual's beta
annealing by epoch, and a validation that scores reconstructions against a static average."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from helius import registry
from helius.data.dataset import SegmentDataset, with_validation
from helius.errors import DataError
from helius.harmonic.config import MelVAEConfig
from helius.harmonic.mel_vae import MelVAE
from helius.losses import kl_per_dim
from helius.models.checkpoint import CheckpointError, load_checkpoint
from helius.train.logging import TrainLogger
from helius.train.runtime import unwrap
from helius.train.task import Task, Validation

# A latent dimension whose average KL is under this many nats carries nothing (the manual's
# "sparsity" is the share of such dimensions).
INACTIVE_NATS = 0.01


class MelVAETask(Task):
    """Train a mel VAE on the segments listed by `data.train_index` (mono: channels averaged).

    Checkpoints are named as the manual names them: harmonic_vae_epoch_N.pt, harmonic_vae_best.pt
    and harmonic_vae_last.pt in `train.checkpoint_dir`."""

    name = "harmonic_vae"
    kind = "mel_vae"
    checkpoint_prefix = "harmonic_vae_"
    epoch_checkpoint = "harmonic_vae_epoch_{epoch}.pt"

    def __init__(self, config: MelVAEConfig, init_from: str | Path | None = None) -> None:
        """`init_from`: a mel VAE checkpoint of another run whose weights this one starts from
        (transfer learning: fine-tune on new data; its architecture must be this config's)."""
        self.config = config
        self.init_from = init_from
        self.sample_rate = config.data.sample_rate
        self.epoch = 0  # beta anneals by epoch, as the manual's does
        self.epoch_sums: dict[str, float] = {}  # this epoch's training numbers, for its summary
        self.epoch_batches = 0

    @property
    def resume_hint(self) -> str:
        """The manual's way to continue a stopped run: --resume_from its last checkpoint."""
        return f"--resume_from {Path(self.config.train.checkpoint_dir) / 'harmonic_vae_last.pt'}"

    def build_model(self) -> nn.Module:
        model = registry.get(self.kind).build(self.config)
        if self.init_from is not None:
            payload = load_checkpoint(self.init_from, kind=self.kind)
            try:
                model.load_state_dict(payload.get("ema") or payload["model"])
            except RuntimeError as error:
                raise CheckpointError(
                    f"{self.init_from}: its mel VAE has another shape than this config's "
                    f"({str(error).splitlines()[0][:160]}); give the same --latent_dim, "
                    "--hidden_dims, --n_mels, --n_fft, --hop_length and --segment_length"
                ) from None
        return model

    def patch_samples(self) -> int:
        """Audio samples of one patch (its centred frames cover segment_length seconds)."""
        model = self.config.model
        samples = int(model.segment_length * self.sample_rate)
        if samples < model.hop_length:
            raise DataError(
                f"model.segment_length {model.segment_length:g} s is shorter than one mel hop "
                f"({model.hop_length} samples at {self.sample_rate} Hz); raise it"
            )
        return samples

    def datasets(self) -> tuple[Dataset, SegmentDataset | None]:
        data, train = self.config.data, self.config.train
        train_set = SegmentDataset(
            data.train_index, self.sample_rate, self.patch_samples(), 1, True, train.seed
        )
        _, val_set = with_validation(train_set, data.val_index, self.eval_dataset)
        if train.augment:  # training patches only: validation measures the audio as it is
            from helius.harmonic.augment import AugmentedDataset, AugmentSettings

            settings = AugmentSettings(train.augment_strength, self.sample_rate, train.seed)
            return AugmentedDataset(train_set, settings), val_set
        return train_set, val_set

    def eval_dataset(self, index_path: str | Path) -> SegmentDataset:
        """The first patch of every segment of an index, in order, for measuring."""
        return SegmentDataset(index_path, self.sample_rate, self.patch_samples(), 1, False)

    def set_epoch(self, train_set, epoch: int) -> None:
        """The trainer starts every epoch (also a resumed one) here: new crops, next beta."""
        super().set_epoch(train_set, epoch)
        self.epoch = epoch
        self.epoch_sums, self.epoch_batches = {}, 0

    def end_epoch(self, model, epoch, epochs, validation, learning_rate) -> str:
        """The manual's line: Epoch 10/50, Train Loss: ..., Val Loss: ..., Recon: ..., KL: ...,
        LR: ... (train figures are the epoch's means, val ones the last validation's)."""
        means = {k: v / max(self.epoch_batches, 1) for k, v in self.epoch_sums.items()}
        parts = [f"Epoch {epoch}/{epochs}" if epochs else f"Epoch {epoch}"]
        parts.append(f"Train Loss: {means.get('loss', float('nan')):.4f}")
        if "score" in validation:
            parts.append(f"Val Loss: {validation['score']:.4f}")
        recon = validation.get("recon_l1", means.get("reconstruction", float("nan")))
        kl = validation.get("kl", means.get("kl", float("nan")))
        parts += [f"Recon: {recon:.4f}", f"KL: {kl:.4f}", f"LR: {learning_rate:.5g}"]
        if "sparsity" in validation:
            parts.append(f"Sparsity: {validation['sparsity']:.2f}")
        every = self.config.train.visualize_every_epochs
        if every and epoch % every == 0:
            parts.append(f"visualizations: {self.visualize(unwrap(model), epoch)}")
        return ", ".join(parts)

    def visualize(self, model: MelVAE, epoch: int) -> Path:
        """The manual's periodic checks (reconstructions, latent maps, samples, sparsity) of
        the validation patches (else training ones) in train.visualization_dir."""
        from helius.harmonic.visualize import validation_patches, visualize

        data, train = self.config.data, self.config.train
        index = data.val_index if data.val_index and Path(data.val_index).is_file() else None
        patches, tags = validation_patches(
            index or data.train_index, self.sample_rate, self.config.model.segment_length, 128
        )
        was_training = model.training
        model.eval()
        try:
            visualize(
                model,
                patches,
                train.visualization_dir,
                tags=tags,
                step_or_epoch=epoch,
                seed=train.seed,
                projections=("tsne",) if len(patches) < 16 else ("tsne", "umap"),
            )
        finally:
            model.train(was_training)
        return Path(train.visualization_dir)

    def loss(self, model: nn.Module, batch: torch.Tensor, step: int):
        log_mel = unwrap(model).features(batch)
        epoch = self.epoch
        # Through the model's own forward (DDP syncs gradients there) via MelVAE.loss.
        total, parts = unwrap(model).loss(log_mel, self.config.train, epoch)
        logged = {name: float(value.detach()) for name, value in parts.items()}
        logged["beta"] = self.config.train.beta(epoch)
        for name, value in {"loss": float(total.detach()), **logged}.items():
            self.epoch_sums[name] = self.epoch_sums.get(name, 0.0) + value
        self.epoch_batches += 1
        return total, logged

    @torch.no_grad()
    def validate(self, model: nn.Module, batches: Iterator[torch.Tensor]) -> Validation:
        """Log-mel L1 of each validation patch's reconstruction (from the posterior mean), the
        same for the validation set's average patch (a static output that follows nothing),
        KL, active dimensions and sparsity. The score is the objective at beta_end (the one
        the run ends on, so scores of annealing epochs compare): L1 + beta_end x KL per bin."""
        vae: MelVAE = unwrap(model)
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        patches, rebuilt, mus, logvars = [], [], [], []
        for batch in batches:
            log_mel = vae.features(batch.to(device))
            mu, logvar = vae.encode(log_mel)
            patches.append(log_mel)
            rebuilt.append(vae.decode(mu))
            mus.append(mu)
            logvars.append(logvar)
        model.train(was_training)
        if not patches:
            raise DataError(f"validation index {self.config.data.val_index} gave no segments")
        patch, output = torch.cat(patches), torch.cat(rebuilt)
        mu, logvar = torch.cat(mus), torch.cat(logvars)
        kl_dims = kl_per_dim(mu, logvar) if mu.shape[0] else mu.new_zeros(mu.shape[1])
        reconstruction = float((output - patch).abs().mean())
        average = patch.mean(dim=0, keepdim=True)
        static = float((average - patch).abs().mean())
        kl = float(kl_dims.sum())
        inactive = float((kl_dims < INACTIVE_NATS).float().mean())
        result = {
            "recon_l1": reconstruction,
            "static_l1": static,
            "recon_vs_static": reconstruction / max(static, 1e-12),
            "kl": kl,
            "active_dims": int((kl_dims >= INACTIVE_NATS).sum()),
            "sparsity": inactive,
            # The objective at beta = 1, whatever beta this run trains with: tuning compares
            # trials of different betas by it.
            "elbo_loss": reconstruction + kl / vae.bins,
        }
        score = reconstruction + self.config.train.beta_end * kl / vae.bins
        return Validation(score=score, metrics=result)

    def validation_warning(self, validation: Validation, step: int) -> str | None:
        ratio = validation.metrics.get("recon_vs_static", 0.0)
        if self.epoch >= 1 and ratio > 0.95:
            return (
                f"the mel VAE's reconstructions are no better than the validation set's average "
                f"patch (L1 {ratio:.2f}x of it): it is not following its input; lower "
                "train.beta_end or raise train.beta_steps"
            )
        return None

    @torch.no_grad()
    def log_media(self, logger: TrainLogger, model: nn.Module, batch: torch.Tensor, step: int):
        vae: MelVAE = unwrap(model)
        was_training = model.training
        model.eval()
        log_mel = vae.features(batch[:1])
        rebuilt = vae.decode(vae.encode(log_mel)[0])
        model.train(was_training)
        logger.image("mel/original", _image(log_mel[0]), step)
        logger.image("mel/reconstruction", _image(rebuilt[0]), step)


def _image(log_mel: torch.Tensor) -> torch.Tensor:
    """(n_mels, frames) log-mel -> (1, n_mels, frames) in [0, 1], low bands at the bottom."""
    low, high = log_mel.min(), log_mel.max()
    return ((log_mel - low) / (high - low).clamp_min(1e-6)).flip(0)[None]
