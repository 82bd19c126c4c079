"""The training report: one self-contained report.html (images and audio inlined) for a run.

A run folder holds `run.json` (written by `helius demo`): which checkpoints, logs and audio
files it made and how fast each stage went. `write_report(run_dir)` reads it and the files it
names, and writes `run_dir/report.html` atomically; nothing is fetched from anywhere.

Sections (each an element with this id): losses, spectrograms, audio, latent-map,
latent-health, metrics, speed, config.
"""

from __future__ import annotations

import base64
import html
import io as bytes_io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import yaml

from helius.errors import DataError
from helius.files import atomic_write_text
from helius.report import figures

SECTIONS = (
    "fidelity",
    "losses",
    "spectrograms",
    "audio",
    "latent-map",
    "latent-health",
    "metrics",
    "speed",
    "config",
)
AUDIO_PREVIEW_SECONDS = 12.0  # longer files are cut in the page to keep it light

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0.2rem; }
section { margin: 2rem 0; }
table { border-collapse: collapse; }
td, th { padding: 0.25rem 0.8rem; border-bottom: 1px solid #ddd; text-align: left; }
img { max-width: 100%; }
pre { background: #f6f6f6; padding: 0.8rem; overflow-x: auto; }
.player { margin: 0.4rem 0; }
.player span { display: inline-block; width: 16rem; }
"""


def load_run(run_dir: str | os.PathLike) -> dict[str, Any]:
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        raise DataError(
            f"{path} does not exist: `helius report` reads a run made by `helius demo --out "
            f"{Path(run_dir)}`"
        )
    return json.loads(path.read_text())


def write_report(run_dir: str | os.PathLike) -> Path:
    """Build run_dir/report.html from run_dir/run.json; returns its path."""
    run_dir = Path(run_dir)
    run = load_run(run_dir)
    parts = [
        f"<h1>Helius run report</h1><p>{html.escape(str(run_dir.resolve()))}</p>",
        _fidelity(run),
        _losses(run_dir, run),
        _spectrograms(run_dir, run),
        _audio(run_dir, run),
        _latent_map(run_dir, run),
        _latent_health(run_dir, run),
        _metrics(run_dir, run),
        _speed(run),
        _config(run),
    ]
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Helius report</title>"
        f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>"
    )
    return atomic_write_text(run_dir / "report.html", page)


# --- sections ---------------------------------------------------------------------------------


def _section(section_id: str, title: str, body: str) -> str:
    return f"<section id='{section_id}'><h2>{html.escape(title)}</h2>{body}</section>"


def _image(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode()
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'>"


def _table(rows: list[tuple[str, str]], header: tuple[str, str] = ("", "")) -> str:
    head = f"<tr><th>{html.escape(header[0])}</th><th>{html.escape(header[1])}</th></tr>"
    body = "".join(
        f"<tr><td>{html.escape(str(a))}</td><td>{html.escape(str(b))}</td></tr>" for a, b in rows
    )
    return f"<table>{head}{body}</table>"


FIDELITY_COLUMNS = (
    ("loudness_corr", "loudness envelope corr. (1 = follows)"),
    ("spectral_change_corr", "spectral-change corr. (1 = follows)"),
    ("loudness_diff_db", "level vs input (dB)"),
    ("mel_distance", "mel distance (0 = same)"),
)


def _fidelity(run: dict[str, Any]) -> str:
    """Does the wave VAE follow its validation audio? The model next to a static sound."""
    fidelity = run.get("fidelity")
    if not fidelity:
        return _section("fidelity", "Does the model follow its input?", "<p>not measured</p>")
    rows = fidelity["rows"]
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in FIDELITY_COLUMNS)
    body = "".join(
        f"<tr><td>{html.escape(name)}</td>"
        + "".join(f"<td>{values[key]:.2f}</td>" for key, _ in FIDELITY_COLUMNS)
        + "</tr>"
        for name, values in rows.items()
    )
    text = (
        f"<p><b>{html.escape(fidelity['verdict'])}</b></p><p>Wave VAE on the validation audio. "
        "The static baseline is noise with the input's average spectrum at its level: it "
        "sounds like the data and follows nothing, so a model must beat it on the follow "
        "columns, not only on distances.</p>"
    )
    table = f"<table><tr><th>output</th>{head}</tr>{body}</table>"
    return _section("fidelity", "Does the model follow its input?", text + table)


def _losses(run_dir: Path, run: dict[str, Any]) -> str:
    curves = {}
    for name, log_dir in run.get("logs", {}).items():
        steps, values = figures.scalar_series(run_dir / log_dir, "train/loss")
        if steps:
            curves[f"{name}: train loss"] = (steps, values)
    body = _image(figures.loss_curves(curves), "loss curves") if curves else "<p>no logs</p>"
    return _section("losses", "Loss curves", body)


def _read(run_dir: Path, relative: str) -> tuple[np.ndarray, int]:
    audio, rate = sf.read(str(run_dir / relative), dtype="float32", always_2d=True)
    return audio.T, rate


def _spectrograms(run_dir: Path, run: dict[str, Any]) -> str:
    audio = run.get("audio", {})
    if "original" not in audio or "reconstruction" not in audio:
        return _section("spectrograms", "Input vs reconstruction", "<p>no audio</p>")
    original, rate = _read(run_dir, audio["original"])
    rebuilt, _ = _read(run_dir, audio["reconstruction"])
    png = figures.spectrograms({"input": original, "reconstruction": rebuilt}, rate)
    return _section("spectrograms", "Input vs reconstruction", _image(png, "spectrograms"))


def _wav_data_uri(audio: np.ndarray, rate: int) -> str:
    buffer = bytes_io.BytesIO()
    clipped = audio[:, : int(AUDIO_PREVIEW_SECONDS * rate)]
    sf.write(buffer, clipped.T, rate, format="WAV", subtype="PCM_16")
    return "data:audio/wav;base64," + base64.b64encode(buffer.getvalue()).decode()


def _audio(run_dir: Path, run: dict[str, Any]) -> str:
    labels = {
        "original": "original (validation)",
        "reconstruction": "reconstruction",
        "dream": "dream (prior)",
        "stream_input": "transformation: input",
        "stream_output": "transformation: output",
        "oneshot_original": "one-shot: original",
        "oneshot_reconstruction": "one-shot: clip VAE from z alone",
    }
    players = []
    for key, label in labels.items():
        if key in run.get("audio", {}):
            audio, rate = _read(run_dir, run["audio"][key])
            players.append(
                f"<div class='player'><span>{html.escape(label)}</span>"
                f"<audio controls src='{_wav_data_uri(audio, rate)}'></audio></div>"
            )
    return _section("audio", "Listen", "".join(players) or "<p>no audio</p>")


def _latent_map(run_dir: Path, run: dict[str, Any]) -> str:
    latent_map = run.get("latent_map")
    if not latent_map:
        return _section("latent-map", "Latent map", "<p>no clip model in this run</p>")
    data = np.load(run_dir / latent_map["file"], allow_pickle=False)
    png = figures.latent_map(
        data["points"], data["colour"], latent_map["colour"], list(data["labels"])
    )
    return _section("latent-map", "Latent map (one-shots, clip VAE)", _image(png, "latent map"))


def _checkpoint_summary(run_dir: Path, run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    from helius.models.checkpoint import load_checkpoint

    summary = {}
    for name, relative in run.get("checkpoints", {}).items():
        payload = load_checkpoint(run_dir / relative)
        summary[name] = {
            "metrics": payload.get("metrics") or {},
            "health": payload.get("latent_health") or {},
            "step": payload.get("step"),
        }
    return summary


def _latent_health(run_dir: Path, run: dict[str, Any]) -> str:
    rows = []
    for name, info in _checkpoint_summary(run_dir, run).items():
        health = info["health"]
        if health:
            fidelity = ", ".join(
                f"{p}%: {int(health[f'pca_dims_{p}'])}"
                for p in (80, 90, 95, 99)
                if f"pca_dims_{p}" in health
            )
            rows.append((name, f"active dims {int(health.get('active_dims', 0))}; PCA {fidelity}"))
    body = _table(rows, ("model", "latent health")) if rows else "<p>none recorded</p>"
    return _section("latent-health", "Latent health", body)


def _metrics(run_dir: Path, run: dict[str, Any]) -> str:
    rows = []
    for name, info in _checkpoint_summary(run_dir, run).items():
        for metric, value in sorted(info["metrics"].items()):
            if metric != "score":
                rows.append((f"{name}: {metric}", f"{value:.4g}"))
    body = _table(rows, ("validation metric (best checkpoint)", "value"))
    return _section("metrics", "Metrics", body)


def _speed(run: dict[str, Any]) -> str:
    names = {
        "wave_train_audio_s_per_s": "wave VAE training (audio-s per s)",
        "clip_train_audio_s_per_s": "clip VAE training (audio-s per s)",
        "stream_realtime_factor": "streaming transformation (x real time)",
        "stream_latency_ms": "streaming latency (ms)",
        "dream_realtime_factor": "dream (x real time)",
    }
    speed = run.get("speed", {})
    threads = speed.get("threads", {})  # stage name -> torch threads it ran on
    stages = {"wave": "wave VAE", "clip": "clip VAE", "stream": "stream", "dream": "dream"}
    rows = []
    for key, label in names.items():
        if key in speed:
            count = threads.get(stages[key.split("_")[0]])
            rows.append((f"{label}, {count} thread(s)" if count else label, f"{speed[key]:.3g}"))
    rows += [(f"stage: {s['name']} (s)", f"{s['seconds']:.1f}") for s in run.get("stages", [])]
    return _section("speed", "Speed", _table(rows, ("measure", "value")))


def _config(run: dict[str, Any]) -> str:
    blocks = [
        f"<h3>{html.escape(name)}</h3><pre>{html.escape(yaml.safe_dump(config))}</pre>"
        for name, config in run.get("config", {}).items()
    ]
    return _section("config", "Configuration", "".join(blocks))
