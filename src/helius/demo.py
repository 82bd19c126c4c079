"""`helius demo`: the whole pipeline on built-in sounds, on the CPU, within a time budget.

Stages: make the built-in data set and prepare it; train a streaming wave VAE on the textures
and a clip VAE on the one-shots; train the prior; dream; stream-transform a new built-in input;
export the streaming model; map the one-shots' latents; write report.html. Training stages get
shares of `minutes`; `tiny` swaps in a tiny model and a few steps each (for the tests).

The presets live in `helius.demo_presets`, not in configs/, so the demo works from an installed
wheel as well.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from helius.audio import io
from helius.audio.synth import make_texture, write_demo_dataset
from helius.config import HeliusConfig, load_config
from helius.demo_presets import CLIP_PRESET, TINY, WAVE_PRESET
from helius.files import atomic_write_text

SHARES = {"wave": 0.45, "clip": 0.15, "prior": 0.12}  # of the budget; the rest is quick work
TRAINING_STAGES = {"wave VAE": "wave", "clip VAE": "clip", "prior": "prior"}  # stage -> share
QUICK_STAGE_MINUTES = 0.03  # each other stage (data, dream, stream, ...): ~1 s here


def minutes_left(stage_names: list[str], index: int, minutes: float) -> float:
    """About how long the demo still runs when stage `index` of `stage_names` starts: the
    budget shares of the training stages from there on, plus the quick stages."""
    later = stage_names[index:]
    training = sum(SHARES[TRAINING_STAGES[name]] for name in later if name in TRAINING_STAGES)
    quick = sum(name not in TRAINING_STAGES for name in later)
    return minutes * training + QUICK_STAGE_MINUTES * quick


@dataclass
class DemoResult:
    out: Path
    report: Path
    explore_command: str
    run: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Run:
    out: Path
    record: dict[str, Any] = field(default_factory=dict)

    def rel(self, path: Path) -> str:
        return Path(os.path.relpath(path, self.out)).as_posix()


def run_demo(
    out: str | os.PathLike,
    minutes: float = 5.0,
    tiny: bool = False,
    seed: int = 0,
    on_stage: Callable[[str, int, int, float], None] | None = None,
) -> DemoResult:
    """Run every stage into `out`; `on_stage(name, index, count, minutes_left)` is told as each
    one starts (minutes_left: `minutes_left`'s estimate)."""
    run = _Run(Path(out))
    run.record = {"stages": [], "speed": {}, "audio": {}, "checkpoints": {}, "logs": {}}
    budget_minutes = max(minutes, 0.1)
    stages = [
        ("data", _stage_data),
        ("wave VAE", _stage_wave),
        ("clip VAE", _stage_clip),
        ("prior", _stage_prior),
        ("dream", _stage_dream),
        ("stream", _stage_stream),
        ("export", _stage_export),
        ("latent map", _stage_map),
        ("report", _stage_report),
    ]
    context = {"tiny": tiny, "minutes": budget_minutes, "seed": seed}
    names, cores = [name for name, _ in stages], torch.get_num_threads()
    for index, (name, stage) in enumerate(stages):
        if on_stage:
            on_stage(name, index, len(stages), minutes_left(names, index, budget_minutes))
        started = time.perf_counter()
        # Streaming and dreaming run small ops a block at a time: one thread is fastest.
        torch.set_num_threads(1 if name in ("dream", "stream") else cores)
        run.record["speed"].setdefault("threads", {})[name] = torch.get_num_threads()
        stage(run, context)
        run.record["stages"].append({"name": name, "seconds": time.perf_counter() - started})
        atomic_write_text(run.out / "run.json", json.dumps(run.record, indent=2))
    torch.set_num_threads(cores)
    from helius.report.page import write_report

    report = write_report(run.out)  # again, now that every stage's time is known
    clip = run.out / run.record["checkpoints"]["clip VAE"]
    command = f"helius explore --vae_ckpt {clip} --data {run.out / 'sounds' / 'oneshots'}"
    return DemoResult(run.out, report, command, run.record)


# --- stages ------------------------------------------------------------------------------------


def _config(
    run: _Run, context: dict, preset: list[str], name: str, data: Path, *extra: str
) -> HeliusConfig:
    """The preset (shrunk in tiny mode) reading the indexes in `data`, writing under `name`."""
    tiny = TINY if context["tiny"] else []
    return load_config(
        None,
        [
            *preset,
            *tiny,
            f"data.train_index={data / 'train_index.txt'}",
            f"data.val_index={data / 'val_index.txt'}",
            f"train.seed={context['seed']}",
            f"train.checkpoint_dir={run.out / 'checkpoints' / name}",
            f"train.log_dir={run.out / 'runs' / name}",
            *extra,
        ],
    )


def _budget(context: dict, share: str, tiny_steps: int) -> str:
    if context["tiny"]:
        return f"train.max_steps={tiny_steps}"
    return f"train.max_minutes={context['minutes'] * SHARES[share]:.4f}"


def _stage_data(run: _Run, context: dict) -> None:
    from helius.data.prep import prepare
    from helius.data.segment import PrepSettings

    tiny = context["tiny"]
    rate = 16000 if tiny else 22050
    write_demo_dataset(
        run.out / "sounds",
        n_oneshots=10 if tiny else 120,
        n_textures=3 if tiny else 12,
        seed=context["seed"],
        sample_rate=rate,
        texture_seconds=4.0 if tiny else 10.0,
        oneshot_seconds=0.25 if tiny else 1.0,
    )
    prepare(
        run.out / "sounds" / "textures",
        run.out / "data",
        PrepSettings(sample_rate=rate, segment_seconds=1.0 if tiny else 2.0),
        val_fraction=0.1,
        workers=1 if tiny else None,
    )
    prepare(
        run.out / "sounds" / "oneshots",
        run.out / "data_clips",
        PrepSettings(sample_rate=rate, segment_seconds=0.25 if tiny else 1.0),
        val_fraction=0.1,
        workers=1 if tiny else None,
    )


def _fit(run: _Run, config: HeliusConfig, name: str) -> float:
    from helius.train.trainer import fit
    from helius.train.vae_task import VAETask

    result = fit(config, VAETask(config))
    run.record["checkpoints"][name] = run.rel(Path(config.train.checkpoint_dir) / "best.pt")
    run.record["logs"][name] = run.rel(Path(config.train.log_dir))
    run.record.setdefault("config", {})[name] = config.model_dump(mode="json")
    return result.audio_seconds / max(result.elapsed_seconds, 1e-9)


def _stage_wave(run: _Run, context: dict) -> None:
    config = _config(
        run,
        context,
        WAVE_PRESET,
        "wave",
        run.out / "data",
        *(["data.segment_seconds=1.0", "train.crop_seconds=0.5"] if context["tiny"] else []),
        _budget(context, "wave", 6),
    )
    run.record["speed"]["wave_train_audio_s_per_s"] = _fit(run, config, "wave VAE")


def _stage_clip(run: _Run, context: dict) -> None:
    tiny = ["data.segment_seconds=0.25", "model.clip.clip_seconds=0.25"] if context["tiny"] else []
    config = _config(
        run,
        context,
        CLIP_PRESET,
        "clip",
        run.out / "data_clips",
        *tiny,
        _budget(context, "clip", 4),
    )
    run.record["speed"]["clip_train_audio_s_per_s"] = _fit(run, config, "clip VAE")


def _stage_prior(run: _Run, context: dict) -> None:
    from helius.train.prior_task import train_prior

    budget = (
        "prior.train.max_steps=4"
        if context["tiny"]
        else f"prior.train.max_minutes={context['minutes'] * SHARES['prior']:.4f}"
    )
    config = _config(
        run,
        context,
        WAVE_PRESET,
        "wave",
        run.out / "data",
        "prior.train.epochs=1000",
        budget,
        f"prior.train.seed={context['seed']}",
        f"prior.train.checkpoint_dir={run.out / 'checkpoints' / 'wave'}",
        f"prior.train.log_dir={run.out / 'runs' / 'wave' / 'prior'}",
    )
    vae = run.out / run.record["checkpoints"]["wave VAE"]
    _, final, _ = train_prior(config, vae)
    run.record["checkpoints"]["prior"] = run.rel(final)
    run.record["logs"]["prior"] = run.rel(Path(config.prior.train.log_dir))


def _stage_dream(run: _Run, context: dict) -> None:
    from helius.generate.dream import dream_to_file

    checkpoints = run.record["checkpoints"]
    output = run.out / "audio" / "dream.wav"
    result = dream_to_file(
        run.out / checkpoints["wave VAE"],
        run.out / checkpoints["prior"],
        output,
        2.0 if context["tiny"] else 10.0,
        temperature=0.9,
        seed=context["seed"],
    )
    run.record["audio"]["dream"] = run.rel(output)
    run.record["speed"]["dream_realtime_factor"] = result.realtime_factor


def _stage_stream(run: _Run, context: dict) -> None:
    from helius.data.dataset import read_index
    from helius.fidelity import follow_report
    from helius.generate.recon import reconstruct
    from helius.generate.stream import LatentTransform, stream_file
    from helius.models.checkpoint import load_vae

    checkpoints, audio_dir = run.record["checkpoints"], run.out / "audio"
    vae_path = run.out / checkpoints["wave VAE"]
    vae, config = load_vae(vae_path)
    rate = config.data.sample_rate
    # A texture the model never heard (another seed), transformed with a latent offset.
    seconds = 2.0 if context["tiny"] else 8.0
    source, _ = make_texture("fm", context["seed"] + 1000, rate, seconds)
    io.save(audio_dir / "stream_input.wav", source, rate)
    result = stream_file(
        vae_path,
        audio_dir / "stream_input.wav",
        audio_dir / "stream_output.wav",
        block_size=2048,
        transform=LatentTransform(bias=0.5, noise=0.1, seed=context["seed"]),
    )
    run.record["audio"].update(
        stream_input=run.rel(audio_dir / "stream_input.wav"),
        stream_output=run.rel(audio_dir / "stream_output.wav"),
    )
    run.record["speed"]["stream_realtime_factor"] = result.realtime_factor
    run.record["speed"]["stream_latency_ms"] = result.latency_ms
    # The validation audio (its segments in a row) and its reconstruction: the spectrograms,
    # and how well the model follows it next to a static sound with the same average spectrum.
    original = np.concatenate(
        [io.load(path, rate)[0] for path in read_index(run.out / "data" / "val_index.txt")], axis=1
    )
    rebuilt = reconstruct(vae, original)
    io.save(audio_dir / "original.wav", original, rate)
    io.save(audio_dir / "reconstruction.wav", rebuilt, rate)
    run.record["fidelity"] = follow_report(
        torch.from_numpy(rebuilt), torch.from_numpy(original), rate, vae.output_delay_samples
    )
    clip_vae, clip_config = load_vae(run.out / checkpoints["clip VAE"])
    shot_path = _first_segment(run.out / "data_clips" / "val_index.txt")
    shot, _ = io.load(shot_path, clip_config.data.sample_rate)
    io.save(audio_dir / "oneshot_original.wav", shot, clip_config.data.sample_rate)
    shot_rebuilt = reconstruct(clip_vae, shot)
    io.save(audio_dir / "oneshot_reconstruction.wav", shot_rebuilt, clip_config.data.sample_rate)
    run.record["audio"].update(
        original=run.rel(audio_dir / "original.wav"),
        reconstruction=run.rel(audio_dir / "reconstruction.wav"),
        oneshot_original=run.rel(audio_dir / "oneshot_original.wav"),
        oneshot_reconstruction=run.rel(audio_dir / "oneshot_reconstruction.wav"),
    )


def _first_segment(index: Path) -> Path:
    from helius.data.dataset import read_index

    return read_index(index)[0]


def _stage_export(run: _Run, context: dict) -> None:
    from helius.generate.export import export_model

    checkpoints = run.record["checkpoints"]
    output = run.out / "model.ts"
    export_model(run.out / checkpoints["wave VAE"], output, run.out / checkpoints["prior"])
    run.record["export"] = run.rel(output)


def _stage_map(run: _Run, context: dict) -> None:
    """PCA of the clip VAE's latents of every one-shot, coloured by its brightness."""
    from sklearn.decomposition import PCA

    from helius.models.checkpoint import load_vae

    model, config = load_vae(run.out / run.record["checkpoints"]["clip VAE"])
    lines = (run.out / "sounds" / "params.jsonl").read_text().splitlines()
    records = [r for r in map(json.loads, lines) if r["family"] == "oneshot"]
    latents = []
    with torch.no_grad():
        for record in records:
            audio, _ = io.load(run.out / "sounds" / record["file"], config.data.sample_rate)
            clip = np.zeros((1, model.clip_samples), np.float32)
            clip[:, : min(audio.shape[1], model.clip_samples)] = audio[:, : model.clip_samples]
            mu, _ = model.encode(torch.from_numpy(clip)[None])
            latents.append(mu[0].numpy())
    points = PCA(n_components=2, random_state=0).fit_transform(np.stack(latents))
    colour = np.array([r["params"].get("brightness_hz", 0.0) for r in records], np.float32)
    labels = np.array([r["kind"] for r in records])
    path = run.out / "latent_map.npz"
    np.savez(path, points=points.astype(np.float32), colour=colour, labels=labels)
    run.record["latent_map"] = {"file": run.rel(path), "colour": "brightness (Hz)"}


def _stage_report(run: _Run, context: dict) -> None:
    from helius.report.page import write_report

    atomic_write_text(run.out / "run.json", json.dumps(run.record, indent=2))
    write_report(run.out)
