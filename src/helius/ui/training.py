"""The explorer's Train tab: one `helius train` subprocess at a time, its live loss, TensorBoard.

A run gets its own folder under the run root (logs/ for TensorBoard, checkpoints/, output.log)
and is started as `python -m helius train --config ... --set ...` from a form whose fields map
to config keys. Its loss comes from its progress output (live) and its TensorBoard scalars
(everything, including validation). TensorBoard is a second subprocess on a free local port.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException

from helius.config import load_config
from helius.ui.schemas import TrainRequest

# Form field -> config key. The form shows the chosen config's values; filled fields become
# `--set key=value`, and the whole config is validated before anything starts.
FORM_FIELDS = {
    "train_index": "data.train_index",
    "val_index": "data.val_index",
    "sample_rate": "data.sample_rate",
    "latent_dim": "model.latent_dim",
    "epochs": "train.epochs",
    "max_steps": "train.max_steps",
    "batch_size": "train.batch_size",
    "learning_rate": "train.learning_rate",
    "weight_decay": "train.weight_decay",
    "grad_accum_steps": "train.grad_accum_steps",
    "grad_clip": "train.grad_clip",
    "beta": "train.kl.beta",
    "kl_schedule": "train.kl.schedule",
    "kl_warmup_steps": "train.kl.warmup_steps",
    "free_bits": "train.kl.free_bits",
    "val_every_steps": "train.val_every_steps",
    "device": "train.device",
}
MAX_SERIES_POINTS = 500
STOP_GRACE_SECONDS = 20.0  # the trainer saves last.pt on SIGINT; then we insist
_STEP = re.compile(r"step=(\d+)|\|\s*(\d+)/\d+")
_LOSS = re.compile(r"loss=([-+0-9.eEnaifNAIF]+)")


@dataclass
class TrainingRun:
    run_id: str
    folder: Path
    command: list[str]
    process: subprocess.Popen
    progress: list[tuple[int, float]] = field(default_factory=list)
    read_offset: int = 0
    events: Any = None  # EventAccumulator, made when logs/ appears

    @property
    def log_path(self) -> Path:
        return self.folder / "output.log"


class TrainingManager:
    """Starts, stops and watches training runs under `run_root`; thread-safe."""

    def __init__(self, run_root: str | os.PathLike) -> None:
        self.run_root = Path(run_root)
        self.run: TrainingRun | None = None
        self.tensorboard: subprocess.Popen | None = None
        self.tensorboard_port: int | None = None
        self._lock = threading.RLock()

    # ---- the form -----------------------------------------------------------------------

    def form(self, config: str | None) -> dict:
        """The config files on offer and the form's values for `config` (None: defaults)."""
        values = load_config(_config_path(config)).model_dump(mode="json")
        fields = []
        for name, key in FORM_FIELDS.items():
            value: Any = values
            for part in key.split("."):
                value = value[part]
            fields.append({"name": name, "key": key, "value": value})
        return {"configs": available_configs(), "config": config, "fields": fields}

    def command_for(self, request: TrainRequest, folder: Path) -> list[str]:
        """The `helius train` command line of a form; raises ConfigError if it is invalid."""
        overrides = []
        for name, value in request.fields.items():
            if name not in FORM_FIELDS:
                raise HTTPException(400, f"unknown training field {name!r}")
            if value is None or (isinstance(value, str) and not value.strip()):
                continue
            text = str(value).lower() if isinstance(value, bool) else str(value)
            overrides.append(f"{FORM_FIELDS[name]}={text}")
        overrides += [*request.overrides]
        overrides += [
            f"train.log_dir={folder / 'logs'}",
            f"train.checkpoint_dir={folder / 'checkpoints'}",
        ]
        if any("\n" in item or "\r" in item for item in overrides):
            raise HTTPException(400, "training values must be single lines")
        config = _config_path(request.config)
        load_config(config, overrides)  # fail here, with the field's name, not in the run
        command = [sys.executable, "-m", "helius", "train"]
        if config is not None:
            command += ["--config", str(config)]
        for item in overrides:
            command += ["--set", item]
        return command

    # ---- runs ---------------------------------------------------------------------------

    def start(self, request: TrainRequest) -> dict:
        with self._lock:
            if self.run is not None and self.run.process.poll() is None:
                raise HTTPException(409, "a training run is going; stop it first")
            run_id = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
            folder = (self.run_root / run_id).resolve()
            command = self.command_for(request, folder)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "command.txt").write_text(" ".join(command) + "\n", encoding="utf-8")
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            with open(folder / "output.log", "wb") as log:
                process = subprocess.Popen(
                    command,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                    start_new_session=True,  # Ctrl+C in the terminal goes through stop()
                )
            self.run = TrainingRun(run_id, folder, command, process)
            return self.status()

    def stop(self) -> dict:
        """Ask the run to stop (SIGINT: it saves last.pt), then terminate it if it hangs."""
        with self._lock:
            run = self.run
        if run is not None and run.process.poll() is None:
            _stop_process(run.process, STOP_GRACE_SECONDS)
        return self.status()

    def status(self) -> dict:
        with self._lock:
            run = self.run
            tensorboard = self.tensorboard_status()
        if run is None:
            return {
                "running": False,
                "run": None,
                "series": {},
                "log": "",
                "tensorboard": tensorboard,
            }
        returncode = run.process.poll()
        return {
            "running": returncode is None,
            "run": {
                "id": run.run_id,
                "folder": str(run.folder),
                "command": run.command,
                "returncode": returncode,
            },
            "series": _series(run),
            "log": _log_tail(run.log_path),
            "tensorboard": tensorboard,
        }

    # ---- TensorBoard --------------------------------------------------------------------

    def launch_tensorboard(self) -> dict:
        """TensorBoard over every run on a free 127.0.0.1 port (started once, then reused)."""
        with self._lock:
            if self.tensorboard is None or self.tensorboard.poll() is not None:
                self.run_root.mkdir(parents=True, exist_ok=True)
                self.tensorboard_port = free_port()
                command = tensorboard_command(self.run_root, self.tensorboard_port)
                with open(self.run_root / "tensorboard.log", "wb") as log:
                    self.tensorboard = subprocess.Popen(
                        command,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        start_new_session=True,
                    )
            return self.tensorboard_status()

    def tensorboard_status(self) -> dict | None:
        if self.tensorboard is None or self.tensorboard_port is None:
            return None
        alive = self.tensorboard.poll() is None
        return {
            "url": f"http://127.0.0.1:{self.tensorboard_port}/",
            "port": self.tensorboard_port,
            "command": self.tensorboard.args,
            "alive": alive,
            "ready": alive and _port_open(self.tensorboard_port),
        }

    def shutdown(self) -> None:
        """Stop the training run and TensorBoard (the server is exiting)."""
        self.stop()
        with self._lock:
            if self.tensorboard is not None and self.tensorboard.poll() is None:
                _stop_process(self.tensorboard, 5.0, first=signal.SIGTERM)


def training_routes(manager: TrainingManager) -> APIRouter:
    router = APIRouter(prefix="/api")

    @router.get("/train/form")
    def form(config: str | None = None) -> dict:
        return manager.form(config or None)

    @router.post("/train/start")
    def start(body: TrainRequest) -> dict:
        return manager.start(body)

    @router.post("/train/stop")
    def stop() -> dict:
        return manager.stop()

    @router.get("/train/status")
    def status() -> dict:
        return manager.status()

    @router.post("/tensorboard")
    def tensorboard() -> dict:
        return manager.launch_tensorboard()

    return router


def available_configs() -> list[str]:
    """YAML configs under ./configs (as paths relative to the working folder)."""
    folder = Path("configs")
    return sorted(path.as_posix() for path in folder.glob("*.yaml")) if folder.is_dir() else []


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def tensorboard_command(logdir: Path, port: int) -> list[str]:
    executable = Path(sys.executable).with_name("tensorboard")
    if executable.is_file():
        program = [str(executable)]
    elif shutil.which("tensorboard"):
        program = [shutil.which("tensorboard")]
    else:
        program = [sys.executable, "-m", "tensorboard.main"]
    return [*program, "--logdir", str(logdir), "--port", str(port), "--host", "127.0.0.1"]


def _config_path(config: str | None) -> Path | None:
    if config is None:
        return None
    path = Path(config)
    if path.suffix.lower() not in (".yaml", ".yml"):
        raise HTTPException(400, f"config {config!r}: choose a .yaml file")
    return path


def _stop_process(process: subprocess.Popen, grace: float, first=signal.SIGINT) -> None:
    for sig, wait in ((first, grace), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        if process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(wait)


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


def _series(run: TrainingRun) -> dict[str, list[list[float]]]:
    """Loss curves: the live progress (train/loss) and every TensorBoard scalar written yet."""
    _read_progress(run)
    series: dict[str, list[list[float]]] = {}
    if run.progress:
        series["progress/loss"] = [[step, loss] for step, loss in run.progress]
    logs = run.folder / "logs"
    if logs.is_dir():
        if run.events is None:
            from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

            run.events = EventAccumulator(str(logs), size_guidance={"scalars": 0})
        with contextlib.suppress(Exception):  # a half-written event file: next poll
            run.events.Reload()
            for tag in run.events.Tags().get("scalars", []):
                series[tag] = [[event.step, event.value] for event in run.events.Scalars(tag)]
    return {tag: _thin(points) for tag, points in series.items()}


def _read_progress(run: TrainingRun) -> None:
    """Parse (step, loss) pairs from the progress bar text appended since the last poll."""
    if not run.log_path.is_file():
        return
    with open(run.log_path, "rb") as log:
        log.seek(run.read_offset)
        text = log.read().decode("utf-8", errors="replace")
    cut = max(text.rfind("\r"), text.rfind("\n")) + 1  # keep a partial update for later
    run.read_offset += len(text[:cut].encode("utf-8", errors="replace"))
    for update in re.split(r"[\r\n]", text[:cut]):
        step, loss = _STEP.search(update), _LOSS.search(update)
        if step and loss:
            number = int(step.group(1) or step.group(2))
            with contextlib.suppress(ValueError):
                if not run.progress or number > run.progress[-1][0]:
                    run.progress.append((number, float(loss.group(1))))


def _thin(points: list[list[float]]) -> list[list[float]]:
    if len(points) <= MAX_SERIES_POINTS:
        return points
    stride = len(points) / MAX_SERIES_POINTS
    return [points[int(i * stride)] for i in range(MAX_SERIES_POINTS - 1)] + [points[-1]]


def _log_tail(path: Path, lines: int = 25) -> str:
    if not path.is_file():
        return ""
    with open(path, "rb") as log:
        log.seek(max(0, path.stat().st_size - 16384))
        text = log.read().decode("utf-8", errors="replace")
    shown = [line.split("\r")[-1] for line in text.split("\n")]
    return "\n".join([line for line in shown if line.strip()][-lines:])
