"""Export a trained causal wave VAE (and optionally its prior) as a streaming TorchScript file.

The file loads with `torch.jit.load` alone (no Helius needed) and follows the interface that
nn~ (acids-ircam's Max/MSP and PureData external) and other RAVE-style hosts discover:

    encode(x: (B, C, n)) -> (B, D, n / hop)        audio to posterior means (mu)
    decode(z: (B, D, m)) -> (B, C, m * hop)        latents to audio
    forward(x: (B, C, n)) -> (B, C, n)             decode(encode(x))
    prior(z: (B, D, m), temperature=None) -> (B, D, m)   only when exported with a prior:
        frame t of the output is sampled after input frames 0..t (the frame that follows)
    reset()                                        forget all streaming state
    get_methods() -> ["forward", "encode", "decode"(, "prior")]
    get_attributes() -> ["temperature"] with a prior (get_temperature -> [t], set_temperature),
        else []

Every method is stateful: each call continues the signal of the previous call, so n must be a
whole multiple of `hop_samples` and m at least one frame. Chunked calls give exactly what the
Python model gives in streaming mode on the same chunks. The state lives in fixed-size buffers
for the export's batch size; a call with another batch size starts a new stream. encode,
decode and forward share one encoder/decoder state, as in RAVE exports: a host should load one
instance per method it runs (nn~ does). The scripted module runs the model's own cached layers
(`nn/streaming.py`) with streaming on. With the noise branch on, decode draws noise from the
global torch generator exactly as the Python model does: under the same `torch.manual_seed`
both agree, otherwise they differ by the noise realisation.

Discovery follows nn~'s backend: it calls `get_methods()` (falling back to every method with a
`<method>_params` attribute), reads `<method>_params` to size its buffers, and lists settable
attributes with `get_attributes()`, each with `<name>_params` type codes and get_/set_<name>.
Before writing, `export_model` streams random audio through the scripted module and the Python
model and refuses to write a file that disagrees.

Metadata a host reads:
    <method>_params buffer: tensor([in_channels, in_ratio, out_channels, out_ratio]);
        encode [C, 1, D, hop], decode [D, hop, C, 1], forward [C, 1, C, 1], prior [D, hop, D, hop]
    <method>_input_labels, <method>_output_labels: one label per channel
    temperature_params: tensor([2]) (one float; nn~'s type code), with a prior
    sampling_rate, channels, latent_dim, hop_samples, latency_samples, output_delay_samples,
    batch_size, headroom, noise_branch, prior_kind ("" without a prior), helius_version
"""

# No `from __future__ import annotations`: TorchScript reads the class annotations below.
import copy
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from helius import __version__
from helius.errors import ConfigError
from helius.files import atomic_output
from helius.models.checkpoint import check_pair, load_prior, load_vae
from helius.models.prior import LatentPrior
from helius.models.wave_vae import WaveVAE
from helius.nn.quantize import check_precision, int8_copy
from helius.nn.streaming import share_reset_counter

FLOAT_ATTRIBUTE = 2  # nn~'s type code of a float attribute argument
CHECK_TOLERANCE = 1e-4


class ExportedVAE(nn.Module):
    """The exported module: nn~-style methods and metadata around a streaming wave VAE."""

    methods: list[str]
    attributes: list[str]

    def __init__(self, vae: WaveVAE, batch_size: int = 1) -> None:
        super().__init__()
        # The model's own layers, streaming (a copy: the caller's model stays as it was).
        vae = copy.deepcopy(vae).eval().streaming(True)
        channels, latent_dim, hop = vae.channels, vae.latent_dim, vae.hop_samples
        self.sampling_rate = vae.sample_rate
        self.channels = channels
        self.latent_dim = latent_dim
        self.hop_samples = hop
        self.latency_samples = vae.latency_samples
        self.output_delay_samples = vae.output_delay_samples
        self.batch_size = batch_size
        self.headroom = float(vae.headroom)
        self.noise_branch = getattr(vae.decoder, "noise", None) is not None
        self.prior_kind = ""
        self.helius_version = __version__
        self.encoder = vae.encoder
        self.decoder = vae.decoder
        self.pqmf = vae.pqmf  # None in the spectral design, which has its own STFT layers
        self.stft_analysis = vae.analysis if vae.pqmf is None else None
        self.stft_synthesis = vae.synthesis if vae.pqmf is None else None
        self.register_buffer("reset_counter", share_reset_counter(self), persistent=False)
        self.methods = []
        self.attributes = []
        audio = [f"(signal) audio channel {index}" for index in range(channels)]
        latents = [f"(signal) latent dimension {index}" for index in range(latent_dim)]
        self.register_method("forward", audio, 1, audio, 1)
        self.register_method("encode", audio, 1, latents, hop)
        self.register_method("decode", latents, hop, audio, 1)

    def register_method(
        self, name: str, inputs: list[str], in_ratio: int, outputs: list[str], out_ratio: int
    ) -> None:
        params = torch.tensor([len(inputs), in_ratio, len(outputs), out_ratio])
        self.register_buffer(f"{name}_params", params)
        setattr(self, f"{name}_input_labels", inputs)
        setattr(self, f"{name}_output_labels", outputs)
        self.methods.append(name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    @torch.jit.export
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.size(1) != self.channels or x.size(2) == 0:
            raise ValueError(
                f"encode expects audio (batch, {self.channels} channels, samples), "
                f"got shape {x.shape}"
            )
        if x.size(2) % self.hop_samples != 0:
            raise ValueError(
                f"encode needs a whole multiple of hop_samples = {self.hop_samples} "
                f"samples, got {x.size(2)}"
            )
        return self.encoder(self._analyse(x))[0]  # hosts get means; logvar is unused

    @torch.jit.export
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 3 or z.size(1) != self.latent_dim or z.size(2) == 0:
            raise ValueError(
                f"decode expects latents (batch, {self.latent_dim}, frames >= 1), "
                f"got shape {z.shape}"
            )
        return self.headroom * torch.tanh(self._synthesise(self.decoder(z)))

    def _analyse(self, x: torch.Tensor) -> torch.Tensor:
        if self.pqmf is not None:
            return self.pqmf.analysis(x)
        assert self.stft_analysis is not None
        return self.stft_analysis(x)

    def _synthesise(self, rows: torch.Tensor) -> torch.Tensor:
        if self.pqmf is not None:
            return self.pqmf.synthesis(rows)
        assert self.stft_synthesis is not None
        return self.stft_synthesis(rows)

    @torch.jit.export
    def reset(self) -> None:
        self.reset_vae()

    def reset_vae(self) -> None:
        # Every cached layer shares this counter and starts afresh on its next call.
        self.reset_counter.add_(1)

    @torch.jit.export
    def get_methods(self) -> list[str]:
        return self.methods

    @torch.jit.export
    def get_attributes(self) -> list[str]:
        return self.attributes


class ExportedVAEWithPrior(ExportedVAE):
    """`ExportedVAE` plus the stateful `prior` method and its `temperature` attribute."""

    def __init__(
        self, vae: WaveVAE, prior: LatentPrior, batch_size: int = 1, temperature: float = 1.0
    ) -> None:
        super().__init__(vae, batch_size)
        self.prior_kind = str(prior.config.kind)
        # The prior's own streaming path (a copy, frozen: a host's calls build no graphs).
        self.prior_model = copy.deepcopy(prior).eval().requires_grad_(False)
        self.temperature = float(temperature)
        latents = [f"(signal) latent dimension {index}" for index in range(vae.latent_dim)]
        self.register_method("prior", latents, vae.hop_samples, latents, vae.hop_samples)
        self.attributes.append("temperature")
        self.register_buffer("temperature_params", torch.tensor([FLOAT_ATTRIBUTE]))

    @torch.jit.export
    def prior(self, z: torch.Tensor, temperature: float | None = None) -> torch.Tensor:
        if z.dim() != 3 or z.size(1) != self.latent_dim or z.size(2) == 0:
            raise ValueError(
                f"prior expects latents (batch, {self.latent_dim}, frames >= 1), "
                f"got shape {z.shape}"
            )
        chosen = self.temperature if temperature is None else temperature
        return self.prior_model.continue_stream(z, chosen)

    @torch.jit.export
    def get_temperature(self) -> list[float]:
        # nn~ reads every get_<attribute>() as a list (Max's `get temperature` fails on a float).
        return [self.temperature]

    @torch.jit.export
    def set_temperature(self, temperature: float) -> int:
        self.temperature = temperature
        return 0

    @torch.jit.export
    def reset(self) -> None:
        self.reset_vae()
        self.prior_model.reset_stream()


@dataclass(frozen=True)
class ExportResult:
    output: Path
    methods: tuple[str, ...]
    method_params: dict[str, tuple[int, int, int, int]]  # in_channels, in_ratio, out_ch, out_ratio
    sample_rate: int
    hop_samples: int
    latency_samples: int
    noise_branch: bool
    prior_kind: str | None
    size_bytes: int

    @property
    def latency_ms(self) -> float:
        return 1000.0 * self.latency_samples / self.sample_rate


def export_model(
    vae_checkpoint: str | os.PathLike,
    output: str | os.PathLike,
    prior_checkpoint: str | os.PathLike | None = None,
    batch_size: int = 1,
) -> ExportResult:
    """Script the VAE (and prior) in checkpoints into one streaming TorchScript file."""
    if batch_size < 1:
        raise ConfigError(f"the export batch size must be at least 1, got {batch_size}")
    vae, config = load_vae(vae_checkpoint)
    if config.model.kind != "wave_vae":
        raise ConfigError(
            f"{vae_checkpoint} holds a clip VAE (model.kind: {config.model.kind}), which maps "
            "whole clips to one latent and cannot stream; export needs a wave VAE "
            "(model.kind: wave_vae)"
        )
    if not vae.causal:
        raise ConfigError(
            f"{vae_checkpoint} holds a non-causal wave VAE (model.wave.causal: false): its "
            "layers look ahead, so it cannot stream in a host. Train one with "
            "model.wave.causal: true to export it"
        )
    hop = vae.hop_samples
    if hop & (hop - 1):
        power = 1 << hop.bit_length()
        raise ConfigError(
            f"{vae_checkpoint} has a hop of {hop} samples (model.wave.bands x prod(ratios), or "
            "stft.hop x stft.frames_per_latent), not a power of two: nn~ cuts its buffers "
            "(2048, 4096 ...) into whole hops and breaks on this one (decode crashes Max). Train "
            f"with a power-of-two hop, e.g. {power // 2} or {power}"
        )
    module: ExportedVAE
    if prior_checkpoint is None:
        module = ExportedVAE(vae, batch_size)
    else:
        prior, prior_config = load_prior(prior_checkpoint)
        check_pair(config, prior_config, prior_checkpoint)
        module = ExportedVAEWithPrior(vae, prior, batch_size)
    scripted = script(module)
    _check_against(scripted, vae, batch_size)
    with atomic_output(output) as tmp_path:
        scripted.save(str(tmp_path))
    params = {name: tuple(getattr(module, f"{name}_params").tolist()) for name in module.methods}
    return ExportResult(
        output=Path(output),
        methods=tuple(module.methods),
        method_params=params,
        sample_rate=module.sampling_rate,
        hop_samples=module.hop_samples,
        latency_samples=module.latency_samples,
        noise_branch=module.noise_branch,
        prior_kind=module.prior_kind or None,
        size_bytes=Path(output).stat().st_size,
    )


def script(module: nn.Module) -> torch.jit.ScriptModule:
    """TorchScript of `module` in eval mode."""
    with warnings.catch_warnings():
        # TorchScript is deprecated in favour of torch.export, but nn~ and other RAVE-style
        # hosts load TorchScript files only, and only TorchScript keeps state between calls.
        warnings.filterwarnings("ignore", "`torch.jit.script` is deprecated", DeprecationWarning)
        return torch.jit.script(module.eval())


def streaming_engine(vae: WaveVAE, precision: str = "float32") -> torch.jit.ScriptModule:
    """The scripted streaming copy of `vae` (batch 1) that `helius stream` and `live` run.

    The same module `helius export` writes: streaming through it rather than through the
    Python layers is 2-3x faster at one latent frame per block, because TorchScript dispatches
    the ~1,000 small operations of a call without Python in between. Like an export, it is
    checked against the Python model's streaming output before it is used. With precision
    "int8" it runs a copy whose linear layers hold int8 weights (`helius.nn.quantize`), checked
    to stream like that copy offline and to stay close to the float32 model.
    """
    model = vae
    if check_precision(precision) == "int8":
        if getattr(vae, "transform", "stft") != "stft":
            raise ConfigError(
                "--precision int8 is for the spectral design (model.wave.transform: stft); on "
                f"this {vae.transform} model int8 weights moved the output by -19 to -25 dB "
                "(measured; its chained convolutions compound the rounding), so stream it with "
                "--precision float32"
            )
        model = int8_copy(vae)
        _check_quantized(model, vae)
    engine = script(ExportedVAE(model))
    _check_against(engine, model, batch_size=1)
    return engine


QUANTIZED_TOLERANCE_DB = -20.0  # int8 output vs float32, relative: measured -39..-54 dB


@torch.no_grad()
def _check_quantized(quantized: nn.Module, vae: WaveVAE) -> None:
    """Refuse an int8 copy whose output strays from the float32 model's on a test signal."""
    generator = torch.Generator().manual_seed(0)
    audio = 0.1 * torch.randn(1, vae.channels, 8 * vae.hop_samples, generator=generator)
    outputs = []
    for model in (vae, quantized):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            outputs.append(model.decode(model.encode(audio)[0]))
    expected, got = outputs
    error = 20 * torch.log10((got - expected).norm() / expected.norm().clamp_min(1e-12)).item()
    if error > QUANTIZED_TOLERANCE_DB:
        raise ConfigError(
            f"with int8 weights this model's output differs from its float32 output by "
            f"{error:.1f} dB (more than {QUANTIZED_TOLERANCE_DB:g} dB); stream it with "
            "--precision float32"
        )


@torch.no_grad()
def _check_against(scripted: torch.jit.ScriptModule, vae: WaveVAE, batch_size: int) -> None:
    """Stream random audio through both models; a mismatch is a bug in scripting, not user error.

    Both decoders draw their noise (if any) in the same order, so one seed makes them agree.
    """
    hop = vae.hop_samples
    generator = torch.Generator().manual_seed(0)
    audio = 0.1 * torch.randn(batch_size, vae.channels, 3 * hop, generator=generator)
    chunks = (audio[..., :hop], audio[..., hop:])
    vae.streaming(True)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            expected = [vae.decode(vae.encode(chunk)[0]) for chunk in chunks]
            torch.manual_seed(0)
            got = [scripted(chunk) for chunk in chunks]
        _require_close(torch.cat(got, dim=-1), torch.cat(expected, dim=-1))
    finally:
        vae.streaming(False)
        scripted.reset()


def _require_close(got: torch.Tensor, expected: torch.Tensor) -> None:
    if got.shape != expected.shape or not torch.allclose(got, expected, atol=CHECK_TOLERANCE):
        error = (got - expected).abs().max().item() if got.shape == expected.shape else None
        raise RuntimeError(
            f"the exported model differs from the Python model (shape {tuple(got.shape)} vs "
            f"{tuple(expected.shape)}, max error {error}); this is a bug in scripting the model"
        )
