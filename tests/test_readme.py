"""Every command the README shows runs: the usage block end to end, the rest by name."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()

# Commands shown in the README that other tests exercise (or that are the suite itself).
COVERED_ELSEWHERE = {
    "make demo": "tests/test_demo_cli.py (helius demo --tiny, every stage and the report)",
    "make test": "CI runs it (.ci/run)",
    ".venv/bin/python -m pytest": "this suite",
    "make lint": "tests/test_readme.py::test_code_is_lint_clean",
    "make format": "tests/test_readme.py::test_code_is_lint_clean (same ruff config)",
    "make bench": "tests/test_bench_run_all.py (bench/run_all.py)",
    "helius live --list-devices": "tests/generate/test_live.py (faked device query)",
    "helius live --vae_ckpt": "tests/generate/test_live.py (fake sound stream, same flags)",
    "helius explore --vae_ckpt": "tests/ui/test_ui_cli.py (a real server subprocess)",
    "python -m helius.harmonic --mode": "tests/harmonic/test_harmonic_cli.py, docs/harmonic.md",
}


def shell_commands(languages: str = "bash") -> list[str]:
    """Command lines from the README's blocks of these languages (a regex), without comments.

    `bash` blocks run here in order; `sh` blocks need hardware (a sound card) and are
    exercised by the tests named in COVERED_ELSEWHERE.
    """
    commands = []
    for block in re.findall(rf"```(?:{languages})\n(.*?)```", README, flags=re.S):
        for line in block.splitlines():
            line = line.split(" #")[0].strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def usage_commands() -> list[str]:
    return [c for c in shell_commands() if c.startswith(("helius ", "python "))]


def test_every_readme_command_is_exercised():
    untested = [
        c
        for c in shell_commands("bash|sh")
        if c not in usage_commands()
        and not any(c.startswith(prefix) for prefix in COVERED_ELSEWHERE)
    ]
    assert untested == []
    assert len(usage_commands()) >= 5


def test_usage_commands_run_in_order(tmp_path):
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    for script in ("data_prep.py", "train.py", "inference.py", "inference_streaming.py"):
        shutil.copy(REPO / script, tmp_path / script)
    for command in usage_commands():
        argv = shlex.split(command)
        argv = (
            [sys.executable, "-m", "helius", *argv[1:]]
            if argv[0] == "helius"
            else ([sys.executable, *argv[1:]])
        )
        completed = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, check=False)
        assert completed.returncode == 0, f"{command}\n{completed.stderr}"
        if "config show" in command:
            assert "batch_size: 16" in completed.stdout
    assert (tmp_path / "data" / "train_index.txt").read_text().strip()
    assert (tmp_path / "checkpoints" / "vae_epoch1.pt").is_file()
    assert (tmp_path / "recon.wav").is_file()
    assert (tmp_path / "checkpoints" / "prior_final.pt").is_file()
    for written in ("generated.wav", "fm_transformed.wav", "streaming_out.wav"):
        assert (tmp_path / "generated" / written).is_file()
    assert (tmp_path / "model.ts").is_file()


def test_code_is_lint_clean():
    ruff = Path(sys.executable).with_name("ruff")
    if not ruff.exists():
        pytest.skip("ruff is not installed in this environment (pip install -e '.[dev]')")
    for args in (["check", "."], ["format", "--check", "."]):
        completed = subprocess.run(
            [str(ruff), *args], cwd=REPO, capture_output=True, text=True, check=False
        )
        assert completed.returncode == 0, completed.stdout + completed.stderr
