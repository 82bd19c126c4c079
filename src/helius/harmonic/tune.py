"""`helius harmonic --mode tune`: an Optuna study over the manual's sweep (latent_dim, beta,
hidden_dims, learning_rate), each trial a run of the shared trainer.

TPE sampling (seeded) and median pruning fed by the trainer's validation callback. Trials are
scored by the validation loss at beta = 1 (`elbo_loss`: log-mel L1 plus the KL per bin), the
same yardstick whatever beta a trial trains with: a trial's own objective would favour a small
beta for free. The study lives in Optuna's storage (SQLite in the output folder by default, so
an interrupted study resumes; a database URL lets several machines work on one study). The
best parameters are written as a ready config, with a table of every trial.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helius.config.base import config_to_yaml
from helius.files import atomic_write_text
from helius.harmonic.config import MelVAEConfig

SCORE = "elbo_loss"
HIDDEN_CHOICES = {"1024-512-256": [1024, 512, 256], "512-256": [512, 256], "256-128": [256, 128]}
LATENT_CHOICES = (64, 128, 256)


@dataclass
class TuneResult:
    best_params: dict[str, Any]
    best_value: float
    trials_finished: int
    trials_pruned: int
    config_path: Path
    table_path: Path


def suggest(trial) -> dict[str, Any]:
    """The manual's sweep: latent_dim 64/128/256, beta over two decades, hidden_dims, LR."""
    return {
        "latent_dim": trial.suggest_categorical("latent_dim", LATENT_CHOICES),
        "beta_end": trial.suggest_float("beta_end", 0.01, 1.0, log=True),
        "hidden_dims": trial.suggest_categorical("hidden_dims", list(HIDDEN_CHOICES)),
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 3e-3, log=True),
    }


def apply(config: MelVAEConfig, params: dict[str, Any], trial_dir: Path) -> MelVAEConfig:
    """`config` with a trial's parameters, writing into its own folder."""
    model = config.model.model_copy(
        update={
            "architecture": "mlp",  # the manual's sweep is over the dense model's widths
            "latent_dim": params["latent_dim"],
            "hidden_dims": HIDDEN_CHOICES[params["hidden_dims"]],
        }
    )
    train = config.train.model_copy(
        update={
            "beta_end": params["beta_end"],
            "learning_rate": params["learning_rate"],
            "checkpoint_dir": str(trial_dir),
            "log_dir": str(trial_dir / "logs"),
            "visualize_every_epochs": None,
            "tensorboard": False,
        }
    )
    # Validated again, so a trial's config is as checked as a hand-written one.
    return MelVAEConfig.model_validate(
        {**config.model_dump(), "model": model.model_dump(), "train": train.model_dump()}
    )


def tune(
    config: MelVAEConfig,
    output_dir: Path,
    trials: int,
    storage: str | None = None,
    study_name: str = "harmonic_vae",
    seed: int = 0,
    train: Callable[..., Any] | None = None,
) -> TuneResult:
    """Run trials until the study holds `trials` finished ones (pruned ones count: a resumed
    study only runs what is missing). `train(config, task, on_validation)` is the trainer."""
    import optuna

    from helius.harmonic.mel_task import MelVAETask
    from helius.train.trainer import fit

    train = train or (lambda cfg, task, hook: fit(cfg, task, on_validation=hook))
    output_dir.mkdir(parents=True, exist_ok=True)
    storage = storage or f"sqlite:///{(output_dir / 'study.db').resolve()}"
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        load_if_exists=True,
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
    )

    def objective(trial) -> float:
        params = suggest(trial)
        trial_config = apply(config, params, output_dir / f"trial_{trial.number:03d}")
        scores: list[float] = []

        def report(step: int, validation) -> bool:
            value = float(validation.metrics[SCORE])
            scores.append(value)
            trial.report(value, len(scores))
            return trial.should_prune()

        train(trial_config, MelVAETask(trial_config), report)
        if trial.should_prune():
            raise optuna.TrialPruned()
        if not scores or not math.isfinite(min(scores)):
            raise RuntimeError("the trial gave no finite validation score")
        return min(scores)

    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    remaining = trials - len(study.get_trials(deepcopy=False, states=done))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if remaining > 0:
        study.optimize(objective, n_trials=remaining, catch=(RuntimeError,))
    return _write_results(study, config, output_dir)


def _write_results(study, config: MelVAEConfig, output_dir: Path) -> TuneResult:
    import optuna

    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        raise RuntimeError("no trial finished; see the trial folders for what went wrong")
    best = study.best_trial
    best_config = apply(config, best.params, Path(config.train.checkpoint_dir))
    config_path = output_dir / "best_config.yaml"
    atomic_write_text(config_path, config_to_yaml(best_config))
    atomic_write_text(output_dir / "best_params.json", json.dumps(best.params, indent=2) + "\n")
    table = io.StringIO()
    columns = ["number", "state", SCORE, *sorted({k for t in study.trials for k in t.params})]
    writer = csv.writer(table)
    writer.writerow([*columns, "seconds"])
    for trial in study.trials:
        seconds = (
            (trial.datetime_complete - trial.datetime_start).total_seconds()
            if trial.datetime_complete and trial.datetime_start
            else ""
        )
        row = [trial.number, trial.state.name, trial.value if trial.value is not None else ""]
        writer.writerow([*row, *(trial.params.get(k, "") for k in columns[3:]), seconds])
    table_path = output_dir / "trials.csv"
    atomic_write_text(table_path, table.getvalue())
    pruned = study.get_trials(states=(optuna.trial.TrialState.PRUNED,))
    return TuneResult(
        best.params, float(best.value), len(complete), len(pruned), config_path, table_path
    )
