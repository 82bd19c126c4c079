"""ClipVAE: one latent vector per fixed-length clip; a conv U-Net VAE whose skips come from z.

Shape of the model (n = len(strides) stages, level k = the signal downsampled by the first k
strides):

    encoder  x (B, C, clip) -> right-pad to a multiple of prod(strides) -> input conv
             -> per stage: ResBlocks, strided conv          skips = levels 1 .. n-1
             -> bottleneck (channels[-1], base_length) -> 1x1 conv to 16 channels -> flatten
             -> separate mu and logvar MLPs (logvar softly floored at logvar_min)
    decoder  z -> MLP -> (16, base_length) -> 1x1 conv -> per stage, deepest first: upsample,
             concatenate the level's skip and mix with a 1x1 conv, ResBlocks
             -> output conv -> headroom * tanh (times a sigmoid envelope with amplitude
             modulation) -> crop back to clip samples

The skips fed to the decoder are either the encoder's (training only, with a probability that
falls over training) or the SkipGenerator's prediction from z. Outside training the model
always decodes from z alone ("no cheat"): validation measures exactly what decoding a latent
that came from no audio gives.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from helius.config import ModelConfig
from helius.errors import ConfigError
from helius.losses import skip_consistency_loss
from helius.models.base import VAEOutput, frozen_if, reparameterize, variance_preserving_
from helius.models.skip_generator import (
    LatentToSequence,
    ResBlock1d,
    SkipGenerator,
    act,
    activation,
    downsample,
    res_stack,
    upsample,
)

__all__ = ["ClipVAE"]

# Channels the bottleneck is squeezed to before flattening: with 44 bottleneck steps (1 s at
# 44.1 kHz, 1024x downsampling) the heads see 704 features, which keeps their Linears small
# while preserving *when* things happen in the clip (pooling over time would lose it).
_NARROW_CHANNELS = 16
_RES_DILATIONS = (1, 3)


class _Encoder(nn.Module):
    def __init__(self, in_channels: int, channels: list[int], strides: list[int]) -> None:
        super().__init__()
        widths = [channels[0], *channels]  # widths[k]: channels at level k
        self.input_conv = nn.Conv1d(in_channels, widths[0], 7, padding=3)
        self.res = nn.ModuleList(res_stack(widths[k], _RES_DILATIONS) for k in range(len(strides)))
        self.down = nn.ModuleList(
            downsample(widths[k], widths[k + 1], stride) for k, stride in enumerate(strides)
        )
        self.bottleneck = res_stack(widths[-1], _RES_DILATIONS)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(bottleneck features, skips at levels 1 .. n-1, shallowest first)."""
        h = self.input_conv(x)
        skips = []
        for level, (res, down) in enumerate(zip(self.res, self.down, strict=True)):
            h = res(h)
            # Level 0 (full rate) has no skip: generating it from z would cost a second decoder.
            if level > 0:
                skips.append(h)
            h = down(h)
        return self.bottleneck(h), skips


class _Decoder(nn.Module):
    def __init__(
        self,
        latent_dim: int,
        hidden: int,
        out_channels: int,
        channels: list[int],
        strides: list[int],
        bottleneck_length: int,
        amplitude_modulation: bool,
    ) -> None:
        super().__init__()
        widths = [channels[0], *channels]
        self.out_channels = out_channels
        self.expand = LatentToSequence(
            latent_dim, hidden, _NARROW_CHANNELS, widths[-1], bottleneck_length
        )
        self.bottleneck = res_stack(widths[-1], _RES_DILATIONS)
        self.up = nn.ModuleList()
        self.fuse = nn.ModuleList()
        self.res = nn.ModuleList()
        for level in reversed(range(len(strides))):  # deepest stage first
            self.up.append(upsample(widths[level + 1], widths[level], strides[level]))
            # Concatenate-then-1x1 lets the decoder learn how much to trust each skip.
            fuse = nn.Conv1d(2 * widths[level], widths[level], 1) if level > 0 else nn.Identity()
            self.fuse.append(fuse)
            self.res.append(res_stack(widths[level], _RES_DILATIONS))
        # With amplitude modulation one conv also yields the envelope's logits.
        heads = 2 if amplitude_modulation else 1
        self.output_conv = nn.Conv1d(widths[0], heads * out_channels, 7, padding=3)

    def forward(self, z: torch.Tensor, skips: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """Pre-activation waveform (B, out_channels, padded length) and, with amplitude
        modulation, envelope logits of the same shape; skips shallowest first."""
        h = self.bottleneck(self.expand(z))
        deepest_first = [*skips[::-1], None]  # the last (full-rate) stage has no skip
        for up, fuse, res, skip in zip(self.up, self.fuse, self.res, deepest_first, strict=True):
            h = up(h)
            if skip is not None:
                h = fuse(torch.cat([h, skip], dim=1))
            h = res(h)
        return self.output_conv(act(h)).split(self.out_channels, dim=1)


class ClipVAE(nn.Module):
    """One latent of `latent_dim` per clip of `clip_seconds`; see the module docstring.

    forward(x (B, C, clip_samples), step) -> VAEOutput with mu, logvar, z of shape (B, D) and
    aux_losses["skip"] = skip_loss_weight x skip consistency (generated vs real skips).
    """

    def __init__(self, config: ModelConfig, sample_rate: int, channels: int = 1) -> None:
        super().__init__()
        clip = config.clip
        if len(clip.channels) != len(clip.strides):
            raise ConfigError(
                f"model.clip.channels ({len(clip.channels)} stages) and model.clip.strides "
                f"({len(clip.strides)} stages) must have the same length"
            )
        if min(clip.strides) < 1 or min(clip.channels) < 1:
            raise ConfigError("model.clip.strides and model.clip.channels must all be >= 1")
        self.config = config
        self._sample_rate = sample_rate
        self._channels = channels
        self._clip_samples = round(clip.clip_seconds * sample_rate)
        total_stride = math.prod(clip.strides)
        # Right-pad to a multiple of the total stride (44100 -> 45056 at the defaults) so every
        # strided conv divides evenly; the decoder's extra tail is cropped off. Zeros, because
        # a clip is followed by silence; the crop means no loss ever sees the padded part.
        self._padded_samples = math.ceil(self._clip_samples / total_stride) * total_stride
        bottleneck_length = self._padded_samples // total_stride

        self.encoder = _Encoder(channels, clip.channels, clip.strides)
        self.narrow = nn.Conv1d(clip.channels[-1], _NARROW_CHANNELS, 1)
        flat_features = _NARROW_CHANNELS * bottleneck_length
        # Separate networks for position and spread of the posterior (LatentAudio reports that
        # a shared head couples them and destabilises training).
        self.mu_head = _mlp(flat_features, clip.hidden, config.latent_dim)
        self.logvar_head = _mlp(flat_features, clip.hidden, config.latent_dim)
        self.decoder = _Decoder(
            config.latent_dim,
            clip.hidden,
            channels,
            clip.channels,
            clip.strides,
            bottleneck_length,
            clip.amplitude_modulation,
        )
        skip_channels = [clip.channels[0], *clip.channels][1:-1]  # widths at levels 1 .. n-1
        self.skip_generator = SkipGenerator(
            config.latent_dim,
            clip.hidden,
            _NARROW_CHANNELS,
            skip_channels=skip_channels,
            strides=clip.strides[1:],
            bottleneck_length=bottleneck_length,
        )
        initialise(self)
        # Adversarial fine-tuning may hold the encoder fixed.
        self.encoder_frozen = False

    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    @property
    def channels(self) -> int:
        return self._channels

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    @property
    def clip_samples(self) -> int:
        return self._clip_samples

    @property
    def hop_samples(self) -> int:
        """Samples per latent vector: the whole clip."""
        return self._clip_samples

    def generated_skip_probability(self, step: int | None) -> float:
        """Chance that a training batch is decoded from generated skips at optimizer step.

        Linear from generated_skip_prob_start (step 0) to generated_skip_prob_end (at
        generated_skip_steps, and after); step None -> the end value.
        """
        clip = self.config.clip
        if step is None:
            return clip.generated_skip_prob_end
        progress = min(max(step, 0) / clip.generated_skip_steps, 1.0)
        start, end = clip.generated_skip_prob_start, clip.generated_skip_prob_end
        return start + (end - start) * progress

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar), each (B, latent_dim), of clips x (B, C, clip_samples)."""
        mu, logvar, _ = self._encode(x)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Audio (B, C, clip_samples) from latents z (B, latent_dim), skips generated from z."""
        return self._decode(z, self.skip_generator(z))

    def forward(self, x: torch.Tensor, step: int | None = None) -> VAEOutput:
        """Encode, sample (training) or take mu (otherwise), decode.

        Training: the decoder gets generated skips with probability
        `generated_skip_probability(step)` (one torch draw per batch), else the encoder's.
        Eval: always generated skips and z = mu, so the output equals decode(encode(x)[0]).
        """
        with frozen_if(self.encoder_frozen):
            mu, logvar, real_skips = self._encode(x)
        z = reparameterize(mu, logvar, sample=self.training and self.config.sample_posterior)
        generated_skips = self.skip_generator(z)
        skips = generated_skips
        if self.training:
            use_generated = torch.rand(()).item() < self.generated_skip_probability(step)
            skips = generated_skips if use_generated else real_skips
        audio = self._decode(z, skips)
        if real_skips:
            skip_loss = skip_consistency_loss(generated_skips, real_skips)
        else:  # a one-stage model has no skips
            skip_loss = mu.new_zeros(())
        return VAEOutput(
            audio=audio,
            mu=mu,
            logvar=logvar,
            z=z,
            aux_losses={"skip": self.config.clip.skip_loss_weight * skip_loss},
        )

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        self._check_input(x)
        padded = F.pad(x, (0, self._padded_samples - self._clip_samples))
        features, skips = self.encoder(padded)
        flat = act(self.narrow(act(features))).flatten(1)
        mu = self.mu_head(flat)
        # A soft floor: logvar_min + softplus keeps a gradient everywhere, unlike a clamp.
        logvar_min = self.config.clip.logvar_min
        logvar = logvar_min + F.softplus(self.logvar_head(flat) - logvar_min)
        return mu, logvar, skips

    def _decode(self, z: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        waveform, *envelope = self.decoder(z, skips)
        audio = self.config.clip.headroom * torch.tanh(waveform[..., : self._clip_samples])
        if envelope:
            # A one-shot decays into silence; tanh alone keeps a noise floor there, which
            # log-magnitude losses (and ears) punish. The envelope can close to near zero.
            audio = audio * torch.sigmoid(envelope[0][..., : self._clip_samples])
        return audio

    def _check_input(self, x: torch.Tensor) -> None:
        expected = (self._channels, self._clip_samples)
        if x.ndim != 3 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"ClipVAE expects (batch, {expected[0]}, {expected[1]}) clips "
                f"(model.clip.clip_seconds x sample rate), got {tuple(x.shape)}"
            )


# Initialisation (see `initialise`), measured on FluidR3 GM drums and built-in one-shots
# (median -31 dBFS RMS over their 1 s clips) with the preset's sizes.
ENCODER_INPUT_GAIN = 28.0  # encoder features (the real skips) of about unit RMS
MU_SCALE = 3.0  # the latent mean's output layer: means about unit scale across clips
SKIP_HEAD_SCALE = 2.0  # generated skips start at the real skips' scale (6x smaller unscaled)
RESIDUAL_BRANCH_SCALE = 0.1  # residual blocks start near identity, so depth does not compound
OUTPUT_SCALE = 0.2  # the first outputs come out near the input's level (envelope half open)
INITIAL_LOGVAR = -4.0  # posterior std 0.14 at first: z starts as the encoder's mean, not noise


def initialise(model: ClipVAE) -> None:
    """Start the clip VAE where the latent decides the output (as `wave_vae.initialise`).

    With PyTorch's default init every layer shrinks the signal and adds a random bias: the
    encoder's mean moved by 1e-4 between one-shots while the posterior's std was 1, and the
    decoder's output, the same -69 dBFS sound for every clip, changed by -80 dB when z was
    zeroed; trained for 300 steps it still gave every clip the same sound (-63 dB when z was
    taken from another clip; issue #12 item 6). Here every conv, transposed conv and Linear is
    variance-preserving (normal, std 1/sqrt(fan_in)) with a zero bias, residual branches
    start small and the posterior starts narrow. The scales are set so that one-shots give
    unit-scale latents and encoder skips, and the skip generator's skips match the encoder's:
    with the encoder's 6x larger, the decoder learned to lean on them during training and
    was then fed the small generated ones (at 300 steps matching gained 0.1 in MR-STFT and
    in spectral-change correlation). The output conv starts small, and the envelope half
    open (a zero logit, as the wave VAE's). The earlier nearly closed envelope (logit -4)
    followed one-shots somewhat better at 300 steps (MR-STFT 1.67 against 1.82, loudness
    correlation 0.90 against 0.89) but fitted a sustained tone three times slower: it has
    to open everywhere the sound is, and Adam moves its bias by about the learning rate
    per step.
    """
    with torch.no_grad():
        for module in model.modules():
            variance_preserving_(module)
        for module in model.modules():
            if isinstance(module, ResBlock1d):
                module.body[-1].weight.mul_(RESIDUAL_BRANCH_SCALE)
        model.encoder.input_conv.weight.mul_(ENCODER_INPUT_GAIN)
        model.mu_head[-1].weight.mul_(MU_SCALE)
        for head in model.skip_generator.heads:
            head.weight.mul_(SKIP_HEAD_SCALE)
        nn.init.zeros_(model.logvar_head[-1].weight)
        nn.init.constant_(model.logvar_head[-1].bias, INITIAL_LOGVAR)
        model.decoder.output_conv.weight.mul_(OUTPUT_SCALE)


def _mlp(in_features: int, hidden: int, out_features: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_features, hidden), activation(), nn.Linear(hidden, out_features)
    )
