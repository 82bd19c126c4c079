"""`helius export`: the TorchScript file streams like the Python model, in a process without
Helius, and carries the nn~-style metadata hosts read."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helius.cli import main
from helius.config import load_config
from helius.errors import ConfigError
from helius.generate.export import export_model
from helius.models import build_model
from helius.models.checkpoint import load_prior, load_vae, save_checkpoint
from helius.models.prior import build_prior

REPO = Path(__file__).resolve().parents[2]
RATE = 16000
HOP = 128  # configs/tiny.yaml: 4 bands x ratios 4, 4, 2
LATENT_DIM = 4
FRAMES = 8
CHUNK_FRAMES = (1, 2, 4)
TOLERANCE = 1e-5

# Hosts such as nn~ read TorchScript only, whatever torch thinks of its future.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")


def make_vae_checkpoint(path: Path, *overrides: str) -> Path:
    config = load_config(
        REPO / "configs" / "tiny.yaml", ["model.wave.noise_branch=false", *overrides]
    )
    torch.manual_seed(0)
    model = build_model(config.model, RATE)
    payload = {"kind": "vae", "config": config.model_dump(mode="json"), "model": model.state_dict()}
    return save_checkpoint(path, {**payload, "ema": None})


def make_prior_checkpoint(path: Path, kind: str = "gru") -> Path:
    config = load_config(
        REPO / "configs" / "tiny.yaml",
        ["model.wave.noise_branch=false", f"prior.kind={kind}", "prior.hidden_size=16"]
        + (["prior.heads=2", "prior.context_frames=4"] if kind == "transformer" else []),
    )
    torch.manual_seed(1)
    prior = build_prior(config.prior, config.model.latent_dim)
    prior.set_statistics(torch.randn(LATENT_DIM), torch.rand(LATENT_DIM) + 0.5)
    payload = {
        "kind": "prior",
        "config": config.model_dump(mode="json"),
        "model": prior.state_dict(),
    }
    return save_checkpoint(path, {**payload, "ema": None})


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("export")
    vae = make_vae_checkpoint(root / "vae.pt")
    prior = make_prior_checkpoint(root / "prior.pt")
    export_model(vae, root / "model.ts", prior_checkpoint=prior)
    return {"root": root, "vae": vae, "prior": prior, "model": root / "model.ts"}


FRESH_PROCESS = """
import sys
import torch

model = torch.jit.load(sys.argv[1])
inputs = torch.load(sys.argv[2])
results = {}
for frames in [int(value) for value in sys.argv[4].split(",")]:
    for method, signal, ratio in (
        ("encode", inputs["audio"], HOP),
        ("decode", inputs["latents"], 1),
        ("forward", inputs["audio"], HOP),
    ):
        model.reset()
        step = frames * ratio
        chunks = [getattr(model, method)(signal[..., start : start + step])
                  for start in range(0, signal.shape[-1], step)]
        results[f"{method}/{frames}"] = torch.cat(chunks, dim=-1)
assert "helius" not in sys.modules, "the exported model pulled in helius"
torch.save(results, sys.argv[3])
"""


def test_exported_model_streams_like_the_python_model_without_helius(exported, tmp_path):
    generator = torch.Generator().manual_seed(3)
    audio = 0.3 * torch.randn(1, 1, FRAMES * HOP, generator=generator)
    latents = torch.randn(1, LATENT_DIM, FRAMES, generator=generator)
    torch.save({"audio": audio, "latents": latents}, tmp_path / "inputs.pt")
    script = tmp_path / "stream.py"
    script.write_text(f"HOP = {HOP}\n" + FRESH_PROCESS)
    chunk_list = ",".join(str(frames) for frames in CHUNK_FRAMES)
    done = subprocess.run(
        [
            sys.executable,
            str(script),
            str(exported["model"]),
            str(tmp_path / "inputs.pt"),
            str(tmp_path / "outputs.pt"),
            chunk_list,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    results = torch.load(tmp_path / "outputs.pt")

    vae, _ = load_vae(exported["vae"])
    vae.streaming(True)
    with torch.no_grad():
        for frames in CHUNK_FRAMES:
            hop_chunks = audio.split(frames * HOP, dim=-1)
            vae.reset_streaming_state()
            expected = {"encode": torch.cat([vae.encode(c)[0] for c in hop_chunks], dim=-1)}
            vae.reset_streaming_state()
            decoded = [vae.decode(c) for c in latents.split(frames, dim=-1)]
            expected["decode"] = torch.cat(decoded, dim=-1)
            vae.reset_streaming_state()
            looped = [vae.decode(vae.encode(c)[0]) for c in hop_chunks]
            expected["forward"] = torch.cat(looped, dim=-1)
            for method, reference in expected.items():
                got = results[f"{method}/{frames}"]
                assert got.shape == reference.shape, (method, frames)
                error = (got - reference).abs().max().item()
                assert error <= TOLERANCE, f"{method} in chunks of {frames} frames: {error}"
    assert results["forward/1"].abs().max() > 0  # not trivially silent


def test_metadata_for_nn_tilde_hosts(exported, tmp_path):
    model = torch.jit.load(str(exported["model"]))
    vae, _ = load_vae(exported["vae"])
    assert model.get_methods() == ["forward", "encode", "decode", "prior"]
    buffers = dict(model.named_buffers())
    expected = {
        "forward": [1, 1, 1, 1],
        "encode": [1, 1, LATENT_DIM, HOP],
        "decode": [LATENT_DIM, HOP, 1, 1],
        "prior": [LATENT_DIM, HOP, LATENT_DIM, HOP],
    }
    for method, params in expected.items():
        assert buffers[f"{method}_params"].tolist() == params
        assert len(getattr(model, f"{method}_input_labels")) == params[0]
        assert len(getattr(model, f"{method}_output_labels")) == params[2]
    assert model.sampling_rate == RATE
    assert (model.latent_dim, model.hop_samples, model.channels) == (LATENT_DIM, HOP, 1)
    assert model.latency_samples == vae.latency_samples
    assert model.prior_kind == "gru" and model.noise_branch is False
    assert model.get_attributes() == ["temperature"]
    assert buffers["temperature_params"].tolist() == [2]
    assert model.set_temperature(0.5) == 0 and model.get_temperature() == [0.5]

    result = export_model(exported["vae"], tmp_path / "vae_only.ts")
    assert result.methods == ("forward", "encode", "decode") and result.prior_kind is None
    assert result.method_params["encode"] == (1, 1, LATENT_DIM, HOP)
    plain = torch.jit.load(str(tmp_path / "vae_only.ts"))
    assert plain.get_methods() == ["forward", "encode", "decode"]
    assert plain.get_attributes() == [] and not hasattr(plain, "prior")
    with pytest.raises(Exception, match="multiple of hop_samples"):
        plain.encode(torch.zeros(1, 1, HOP + 1))


@pytest.mark.parametrize("kind", ["gru", "transformer"])
def test_prior_method_is_stateful_seeded_and_matches_python(exported, tmp_path, kind):
    prior_path = (
        exported["prior"] if kind == "gru" else make_prior_checkpoint(tmp_path / "prior.pt", kind)
    )
    export_model(exported["vae"], tmp_path / "model.ts", prior_checkpoint=prior_path)
    model = torch.jit.load(str(tmp_path / "model.ts"))

    def dream(seed: int) -> torch.Tensor:
        model.reset()
        torch.manual_seed(seed)
        frame, frames = torch.zeros(1, LATENT_DIM, 1), []
        for _ in range(6):
            frame = model.prior(frame)
            frames.append(frame)
        return torch.cat(frames, dim=-1)

    first, again, other = dream(5), dream(5), dream(6)
    assert first.shape == (1, LATENT_DIM, 6)
    assert torch.equal(first, again) and not torch.equal(first, other)

    prior, _ = load_prior(prior_path)
    latents = torch.randn(1, LATENT_DIM, 5, generator=torch.Generator().manual_seed(4))
    for temperature in (0.0, 0.8):
        model.reset()
        torch.manual_seed(9)
        got = torch.cat(
            [
                model.prior(latents[..., :2], temperature),
                model.prior(latents[..., 2:], temperature),
            ],
            -1,
        )
        torch.manual_seed(9)
        with torch.no_grad():
            logits, state = prior(prior.standardise(latents[..., :2]))
            head = prior.restore(prior.sample(logits, temperature))
            logits, _ = prior(prior.standardise(latents[..., 2:]), state)
            tail = prior.restore(prior.sample(logits, temperature))
        assert torch.allclose(got, torch.cat([head, tail], dim=-1), atol=TOLERANCE)


def test_reset_after_a_host_ran_the_model_in_inference_mode(exported):
    """nn~ runs the model under torch.inference_mode() and calls reset() outside it: the caches
    must be replaced, not zeroed in place (an inference tensor refuses in-place updates)."""
    model = torch.jit.load(str(exported["model"]))
    audio = 0.3 * torch.randn(1, 1, 2 * HOP, generator=torch.Generator().manual_seed(8))
    with torch.inference_mode():
        first = model.forward(audio)
        model.prior(torch.zeros(1, LATENT_DIM, 1))
    model.reset()
    with torch.inference_mode():
        again = model.forward(audio)
    torch.testing.assert_close(again, first)


def test_non_causal_and_clip_models_are_refused(tmp_path):
    non_causal = make_vae_checkpoint(tmp_path / "non_causal.pt", "model.wave.causal=false")
    with pytest.raises(ConfigError, match=r"non-causal.*model.wave.causal: true"):
        export_model(non_causal, tmp_path / "a.ts")
    clip = make_vae_checkpoint(
        tmp_path / "clip.pt",
        "model.kind=clip_vae",
        "model.clip.channels=[8,8]",
        "model.clip.strides=[4,4]",
        "model.clip.hidden=16",
        "model.clip.clip_seconds=0.1",
    )
    with pytest.raises(ConfigError, match=r"clip VAE.*model.kind: wave_vae"):
        export_model(clip, tmp_path / "b.ts")
    odd_hop = make_vae_checkpoint(tmp_path / "odd.pt", "model.wave.ratios=[3,2]")
    with pytest.raises(ConfigError, match=r"hop of 24 samples .* not a power of two"):
        export_model(odd_hop, tmp_path / "c.ts")
    assert not list(tmp_path.glob("*.ts*"))  # nothing written, not even a temporary file


def test_noise_branch_exports_and_matches_under_one_seed(tmp_path):
    vae_path = make_vae_checkpoint(tmp_path / "noisy.pt", "model.wave.noise_branch=true")
    result = export_model(vae_path, tmp_path / "noisy.ts")
    assert result.noise_branch
    model = torch.jit.load(str(tmp_path / "noisy.ts"))
    vae, _ = load_vae(vae_path)
    vae.streaming(True)
    latents = torch.randn(1, LATENT_DIM, 4)
    torch.manual_seed(2)
    got = torch.cat([model.decode(chunk) for chunk in latents.split(2, dim=-1)], dim=-1)
    torch.manual_seed(2)
    with torch.no_grad():
        expected = torch.cat([vae.decode(chunk) for chunk in latents.split(2, dim=-1)], dim=-1)
    assert (got - expected).abs().max() <= TOLERANCE


def test_cli_export(exported, tmp_path, capsys):
    output = tmp_path / "cli" / "model.ts"
    args = ["export", "--vae-ckpt", str(exported["vae"]), "--prior_ckpt", str(exported["prior"])]
    assert main([*args, "--output", str(output)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {output}" in printed
    rate = load_vae(exported["vae"])[1].data.sample_rate
    assert f"a {rate} Hz model: run the host at that rate" in printed
    assert "encode" in printed and "prior" in printed and "latency 184 samples" in printed
    assert torch.jit.load(str(output)).get_methods()[-1] == "prior"

    non_causal = make_vae_checkpoint(tmp_path / "nc.pt", "model.wave.causal=false")
    assert main(["export", "--vae_ckpt", str(non_causal), "--output", str(output), "--quiet"]) == 1
    assert "non-causal" in capsys.readouterr().err
