"""`helius train` says at start what will end the run, and roughly when (issue #14 item 2)."""

from __future__ import annotations

from helius.config import TrainConfig
from helius.train.stopping import EtaReporter, eta_note, stop_rule


def test_stop_rule_names_each_limit_and_its_key():
    by_epochs = stop_rule(
        TrainConfig(max_steps=None, epochs=3), steps_per_epoch=40, total_steps=120
    )
    assert "after 3 epochs = step 120 (train.epochs; 40 steps per epoch)" in by_epochs
    assert "max_minutes" not in by_epochs and "whichever" not in by_epochs
    both = stop_rule(
        TrainConfig(max_steps=5000, epochs=200, max_minutes=30, early_stopping_patience=4),
        steps_per_epoch=40,
        total_steps=5000,
        start_step=100,
    )
    assert both.startswith("training from step 100 stops at step 5000 (train.max_steps), ")
    assert "after 200 epochs = step 8000" in both and "after 30 min (train.max_minutes)" in both
    assert "after 4 validations without improvement" in both and "whichever comes first" in both


def test_eta_note_picks_the_limit_that_comes_first():
    # 1000 steps left at 0.5 s/step: 500 s by steps, so a 10-minute budget never bites.
    assert eta_note(0, 0.5, 1000, 600.0) == "at 0.50 s/step, step 1000 comes in about 8 min"
    # A 2-minute budget ends it first, 240 steps in.
    assert eta_note(0, 0.5, 1000, 120.0) == (
        "at 0.50 s/step the time budget ends training in about 2 min, near step 240 of 1000"
    )
    assert "about 2.8 h" in eta_note(0, 1.0, 10_000, None)


def test_eta_reporter_notes_once_after_the_timed_steps(monkeypatch):
    notes, clock = [], iter(float(t) for t in range(1000))
    monkeypatch.setattr("helius.train.stopping.progress.note", notes.append)
    monkeypatch.setattr("helius.train.stopping.time.perf_counter", lambda: next(clock))
    reporter = EtaReporter(TrainConfig(max_steps=125), total_steps=125)
    for step in range(1, 60):
        reporter.update(step, started=0.0)
    # Timing starts at step 5 (t=4); step 25 (t=24): 20 steps in 20 s, 100 steps to go.
    assert notes == ["at 1.00 s/step, step 125 comes in about 2 min"]


def test_the_earlier_of_max_steps_and_epochs_ends_training_and_one_limit_is_needed():
    import pytest

    from helius.errors import ConfigError
    from helius.train.stopping import UNLIMITED_STEPS, step_limit

    assert step_limit(TrainConfig(max_steps=500, epochs=2), steps_per_epoch=100) == 200
    assert step_limit(TrainConfig(max_steps=150, epochs=2), steps_per_epoch=100) == 150
    assert step_limit(TrainConfig(max_steps=None, epochs=3), steps_per_epoch=7) == 21
    only_time = TrainConfig(max_steps=None, epochs=None, max_minutes=5)
    assert step_limit(only_time, steps_per_epoch=7) == UNLIMITED_STEPS
    with pytest.raises(ConfigError, match="train.max_steps, train.epochs or train.max_minutes"):
        step_limit(TrainConfig(max_steps=None, epochs=None), steps_per_epoch=7)
