"""Every docs/ page can be followed end to end: its bash blocks run in order in a fresh folder.

Commands in `sh` blocks need a server or hardware and are exercised by the tests named in
the page's own test (see test_readme.py's COVERED_ELSEWHERE for the README).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = sorted((REPO / "docs").glob("*.md"))
SCRIPTS = ("data_prep.py", "train.py", "inference.py", "inference_streaming.py")


def commands(page: Path) -> list[str]:
    found = []
    for block in re.findall(r"```bash\n(.*?)```", page.read_text(), flags=re.S):
        for line in block.splitlines():
            line = line.split(" #")[0].strip()
            if line and not line.startswith("#"):
                found.append(line)
    return found


def test_there_is_a_page_per_system():
    assert {"core.md"} <= {page.name for page in PAGES}


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_page_commands_run_in_order(page, tmp_path):
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    for script in SCRIPTS:
        shutil.copy(REPO / script, tmp_path / script)
    (tmp_path / "tests").mkdir()
    shutil.copy(REPO / "tests" / "test_generation.py", tmp_path / "tests")
    lines = commands(page)
    assert lines, f"{page.name} shows no commands"
    for line in lines:
        argv = shlex.split(line)
        if argv[0] == "helius":
            argv = [sys.executable, "-m", "helius", *argv[1:]]
        elif argv[0] == "python":
            argv = [sys.executable, *argv[1:]]
        else:
            pytest.fail(f"{page.name}: unexpected command {line!r}")
        completed = subprocess.run(
            argv, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False
        )
        assert completed.returncode == 0, f"{page.name}: {line}\n{completed.stderr[-2000:]}"


def test_pages_the_code_points_users_to_exist():
    """Messages and docstrings send users to docs/<page>.md: every such page is there."""
    pointed = {
        match
        for path in (REPO / "src").rglob("*.py")
        for match in re.findall(r"docs/[\w-]+\.md", path.read_text())
    }
    assert pointed, "the code points to no page at all: the pattern is wrong"
    missing = sorted(page for page in pointed if not (REPO / page).is_file())
    assert not missing, f"pages named in src/ that do not exist: {missing}"
