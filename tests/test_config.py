"""helius.config: defaults, YAML, --set overrides, and errors that name the field and value."""

from __future__ import annotations

from pathlib import Path

import pytest

from helius.cli import main
from helius.config import HeliusConfig, load_config
from helius.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_documented_default_file_matches_builtin_defaults():
    config = load_config(REPO / "configs" / "config.yaml")
    assert config == HeliusConfig()
    assert config.data.train_index == "data/train_index.txt"
    assert config.data.sample_rate == 48000 and config.data.segment_seconds == 2.0


def test_overrides_are_parsed_as_yaml_values():
    config = load_config(
        None,
        [
            "data.sample_rate=44100",
            "data.mono=false",
            "train.learning_rate=3e-4",
            "prior.kind=transformer",
        ],
    )
    assert config.data.sample_rate == 44100 and config.data.mono is False
    assert config.train.learning_rate == pytest.approx(3e-4)
    assert config.prior.kind == "transformer"


def test_unknown_key_in_a_file_names_file_path_and_valid_keys(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("data:\n  smaple_rate: 44100\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert str(path) in message
    assert "data.smaple_rate: unknown key" in message and "sample_rate" in message


def test_wrong_type_names_path_and_value():
    with pytest.raises(ConfigError, match=r"train\.batch_size: .*integer.*\(got 'lots'\)"):
        load_config(None, ["train.batch_size=lots"])
    with pytest.raises(ConfigError, match=r"data\.val_fraction: .*less than 1.*\(got 1\.5\)"):
        load_config(None, ["data.val_fraction=1.5"])
    with pytest.raises(ConfigError, match=r"unknown key"):
        load_config(None, ["optimizer.lr=1"])


@pytest.mark.parametrize("override", ["data.sample_rate", "sample_rate=1", "=3", "data..x=1"])
def test_malformed_overrides_say_the_expected_form(override):
    with pytest.raises(ConfigError, match="expected section.key=value"):
        load_config(None, [override])


def test_unreadable_files_fail_clearly(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(listing)
    broken = tmp_path / "broken.yaml"
    broken.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)


def test_config_show_prints_the_resolved_config(capsys):
    code = main(
        [
            "config",
            "show",
            "--config",
            str(REPO / "configs" / "config.yaml"),
            "--set",
            "train.batch_size=16",
            "--set",
            "data.sample_rate=44100",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert "batch_size: 16" in printed and "sample_rate: 44100" in printed
    expected = load_config(None, ["train.batch_size=16", "data.sample_rate=44100"])
    assert expected.model_dump(mode="json") == (__import__("yaml").safe_load(printed))


def test_config_show_reports_bad_keys_without_a_traceback(capsys):
    assert main(["config", "show", "--set", "data.smaple_rate=1"]) == 1
    error = capsys.readouterr().err
    assert "helius: error:" in error and "data.smaple_rate: unknown key" in error
    assert "Traceback" not in error


def test_lowlatency_preset_keeps_its_latency_promise():
    """configs/lowlatency.yaml streams with at most 512 samples of model latency at 44.1 kHz."""
    from helius.models import build_model

    config = load_config(REPO / "configs" / "lowlatency.yaml")
    vae = build_model(config.model, config.data.sample_rate)
    assert config.data.sample_rate == 44100 and vae.causal
    assert vae.latency_samples <= 512


def test_the_prior_trains_by_its_own_train_section_and_reads_the_old_spelling():
    config = load_config(None, ["prior.train.max_steps=7", "train.max_steps=99"])
    assert config.prior.train.max_steps == 7 and config.train.max_steps == 99
    # The prior's run has its own defaults, not the VAE's (30,000 steps, batch 8).
    assert load_config(None).prior.train.max_steps is None
    assert load_config(None).prior.train.batch_size == 16
    # Configs and checkpoints written before prior.train: the flat keys move into it.
    old = load_config(None, ["prior.max_steps=5", "prior.batch_size=3"])
    assert (old.prior.train.max_steps, old.prior.train.batch_size) == (5, 3)
    with pytest.raises(ConfigError, match="prior.max_steps .* and as prior.train.max_steps"):
        load_config(None, ["prior.max_steps=5", "prior.train.max_steps=6"])


def test_the_shared_train_section_holds_no_system_objective():
    from helius.config import PriorTrainConfig, TrainConfig, VAETrainConfig

    objective = {"loss", "kl", "adversarial", "crop_seconds", "active_dim_threshold"}
    assert not objective & set(TrainConfig.model_fields)
    assert objective <= set(VAETrainConfig.model_fields)
    assert not objective & set(PriorTrainConfig.model_fields)
