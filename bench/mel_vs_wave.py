"""Benchmark HarmonicVAE's mel VAE against the Helius core's wave VAE at the same CPU budget.

Both train on the same `helius prep` folder for `--minutes` of `--train-threads` threads each
(one after the other, so neither slows the other): the wave VAE with the default
`configs/config.yaml`, the mel VAE with its defaults (`model.kind=mel_vae`). Each then
reconstructs the folder's validation segments (whole source files the training never saw)
from the posterior mean; the mel VAE's log-mel comes back as audio through Griffin-Lim and,
with `--vocoder CKPT` (e.g. from `bench/vocoder.py --keep DIR`), through the trained vocoder.
Rows measured the same way as baselines and ceilings: a static output with the training set's
average spectrum (follows nothing), the input's own mel through Griffin-Lim and through the
vocoder (the best any mel model can sound through each). Metrics (helius.metrics, at the data's
rate, on the first whole wave-VAE frames of each segment): MR-STFT, mel distance and the
correlation of input and output loudness envelopes (2048-sample frames, hop 512).

Prints a table; writes bench/results/mel_vs_wave-<date>-<host>.json with the load average.

    python bench/mel_vs_wave.py --data /tmp/voc_data --minutes 15 [--vocoder CKPT] [--keep DIR]
    python bench/mel_vs_wave.py --data /tmp/voc_data --keep DIR --measure-only --vocoder CKPT
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from record import held_out, write_result  # bench/ is on sys.path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent


def common(args: argparse.Namespace, workdir: Path) -> list[str]:
    return [
        f"data.train_index={args.data / 'train_index.txt'}",
        f"data.val_index={args.data / 'val_index.txt'}",
        f"data.sample_rate={args.sample_rate}",
        f"data.segment_seconds={args.segment_seconds}",
        f"train.max_minutes={args.minutes}",
        "train.max_steps=null",
        "train.val_every_steps=1000000",
        "train.tensorboard=false",
        "train.device=cpu",
        f"train.checkpoint_dir={workdir}",
        f"train.log_dir={workdir / 'logs'}",
    ]


def train(name: str, config_path: Path | None, overrides: list[str], args) -> tuple:
    from helius import registry
    from helius.config import load_config
    from helius.train.trainer import fit

    config = load_config(config_path, overrides)
    torch.set_num_threads(args.train_threads)
    torch.manual_seed(0)
    started = time.perf_counter()
    result = fit(config, registry.get(config.model.kind).task(config))
    facts = {
        "model": name,
        "steps": result.step,
        "train_minutes": (time.perf_counter() - started) / 60,
        "train_threads": args.train_threads,
        "audio_seconds_trained": result.audio_seconds,
        "parameters": sum(p.numel() for p in result.model.parameters()),
        "overrides": overrides,
    }
    return result.model.eval(), facts


def segments(index: Path, args: argparse.Namespace, count: int | None) -> torch.Tensor:
    return held_out(index, args.sample_rate, int(args.segment_seconds * args.sample_rate), count)


def loudness_correlation(output: torch.Tensor, target: torch.Tensor) -> float:
    """Mean over clips of the Pearson correlation of per-frame loudness (dB)."""
    values = []
    for out, ref in zip(output, target, strict=True):
        frames = [x.reshape(-1).unfold(0, 2048, 512) for x in (out, ref)]
        db = [10 * torch.log10(f.pow(2).mean(dim=1) + 1e-10) for f in frames]
        db = [d - d.mean() for d in db]
        denominator = (db[0].norm() * db[1].norm()).clamp_min(1e-12)
        values.append(float((db[0] * db[1]).sum() / denominator))
    return sum(values) / len(values)


def distances(name: str, output: torch.Tensor, target: torch.Tensor, rate: int) -> dict:
    from helius import metrics

    length = min(output.shape[-1], target.shape[-1])
    output, target = output[..., :length], target[..., :length]
    return {
        "row": name,
        "mrstft": float(metrics.mrstft_distance(output, target)),
        "mel": float(metrics.mel_distance(output, target, rate)),
        "loudness_corr": loudness_correlation(output, target),
    }


def static_average(train_audio: torch.Tensor, length: int, seed: int = 0) -> torch.Tensor:
    """Noise shaped by the training set's average magnitude spectrum: follows nothing."""
    spectrum = torch.fft.rfft(train_audio[..., :length]).abs().mean(dim=0)  # (1, bins)
    generator = torch.Generator().manual_seed(seed)
    phase = torch.rand(spectrum.shape, generator=generator) * 2 * torch.pi
    return torch.fft.irfft(spectrum * torch.exp(1j * phase), n=length)[None]


@torch.no_grad()
def invert(inverter, log_mel: torch.Tensor) -> torch.Tensor:
    return torch.cat([inverter(log_mel[i : i + 1]) for i in range(log_mel.shape[0])])


@torch.no_grad()
def measure(wave, mel_vae, vocoder, audio, train_audio, args) -> list[dict]:
    from helius.harmonic.griffin_lim import GriffinLim

    torch.set_num_threads(2)
    rate = args.sample_rate
    hop = int(wave.hop_samples)
    whole = audio.shape[-1] // hop * hop  # the wave VAE decodes whole latent frames
    target = audio[..., :whole]
    static = static_average(train_audio, whole).expand(audio.shape[0], -1, -1)
    rows = [distances("static average spectrum", static, target, rate)]
    mu, _ = wave.encode(target)
    rows.append(distances("wave VAE", wave.decode(mu), target, rate))

    griffin_lim = GriffinLim(mel_vae.mel, iterations=args.griffin_lim_iterations)
    log_mel = mel_vae.features(audio)
    rebuilt = mel_vae.decode(mel_vae.encode(log_mel)[0])
    inverters = [(f"Griffin-Lim {args.griffin_lim_iterations}", griffin_lim)]
    if vocoder is not None:
        inverters.append(("vocoder", vocoder))
    for label, inverter in inverters:
        rows.append(distances(f"mel VAE -> {label}", invert(inverter, rebuilt), target, rate))
        rows.append(distances(f"input mel -> {label}", invert(inverter, log_mel), target, rate))
    return rows


def print_table(rows: list[dict]) -> None:
    print(f"{'row':<30} {'MR-STFT':>8} {'mel':>7} {'loudness corr':>14}")
    for row in rows:
        print(
            f"{row['row']:<30} {row['mrstft']:>8.3f} {row['mel']:>7.3f} "
            f"{row['loudness_corr']:>14.2f}"
        )


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--data", type=Path, required=True, help="a helius prep folder")
parser.add_argument("--sample-rate", type=int, default=22050)
parser.add_argument("--segment-seconds", type=float, default=2.0, help="as prepared")
parser.add_argument("--minutes", type=float, default=15.0, help="training budget per model")
parser.add_argument("--train-threads", type=int, default=2)
parser.add_argument("--segments", type=int, default=48, help="held-out segments measured")
parser.add_argument("--griffin-lim-iterations", type=int, default=32)
parser.add_argument("--vocoder", type=Path, help="a vocoder checkpoint with the mel VAE's mel")
parser.add_argument("--keep", type=Path, help="train into this folder and keep the checkpoints")
parser.add_argument(
    "--measure-only", action="store_true", help="measure the models a --keep run trained"
)
parser.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")


def main(argv: list[str] | None = None) -> int:
    args = parser.parse_args(argv)
    load_start = os.getloadavg()
    from helius import progress
    from helius.models.checkpoint import load_model

    progress.set_enabled(sys.stderr.isatty())
    with tempfile.TemporaryDirectory() as scratch:
        workdir = args.keep or Path(scratch)
        facts_path = workdir / "training.json"
        if args.measure_only:  # the models a run with --keep trained
            wave = load_model(workdir / "wave" / "last.pt", kind="vae")[0]
            mel_vae = load_model(workdir / "mel" / "harmonic_vae_last.pt", kind="mel_vae")[0]
            wave_facts, mel_facts = json.loads(facts_path.read_text())
        else:
            wave, wave_facts = train(
                "wave VAE", REPO / "configs" / "config.yaml", common(args, workdir / "wave"), args
            )
            mel_overrides = ["model.kind=mel_vae", *common(args, workdir / "mel")]
            mel_overrides.remove(f"data.segment_seconds={args.segment_seconds}")
            mel_overrides.append(f"model.segment_length={args.segment_seconds}")
            mel_vae, mel_facts = train("mel VAE", None, mel_overrides, args)
            facts_path.write_text(json.dumps([wave_facts, mel_facts], indent=2) + "\n")
    vocoder = load_model(args.vocoder, kind="vocoder")[0] if args.vocoder else None
    audio = segments(args.data / "val_index.txt", args, args.segments)
    train_audio = segments(args.data / "train_index.txt", args, 256)
    rows = measure(wave, mel_vae, vocoder, audio, train_audio, args)
    print_table(rows)
    path = write_result(
        args.results_dir,
        "mel_vs_wave",
        load_start,
        data=str(args.data),
        held_out_segments=audio.shape[0],
        vocoder=str(args.vocoder) if args.vocoder else None,
        training=[wave_facts, mel_facts],
        rows=rows,
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
