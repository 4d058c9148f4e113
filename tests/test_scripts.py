"""`scripts/demo.sh` installs into .venv only when .venv is not current.

Run in a copy of the script beside a fake ``.venv/bin/python`` that logs what it is asked to
do, so the test takes milliseconds and touches neither the network nor the real .venv.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FAKE_PYTHON = """#!/bin/sh
echo "$*" >> "$(dirname "$0")/../calls.log"
"""


def _tree(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "demo.sh", tmp_path / "scripts" / "demo.sh")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    return tmp_path


def _demo(tree: Path) -> list[str]:
    """Run demo.sh; return the fake python's calls, and forget them."""
    # The real interpreter's directory first on PATH: demo.sh looks for a CPython 3.10-3.13.
    path = str(Path(sys.executable).resolve().parent) + os.pathsep + os.environ["PATH"]
    proc = subprocess.run(
        ["bash", "scripts/demo.sh"],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PATH": path},
    )
    assert proc.returncode == 0, proc.stderr
    log = tree / ".venv" / "calls.log"
    calls = log.read_text().splitlines()
    log.unlink()
    return calls


def test_demo_installs_once_then_only_runs_the_demo(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    install = "-m pip install -q --disable-pip-version-check -e ."
    assert _demo(tree) == [install, "examples/retrofit.py"]
    assert _demo(tree) == ["examples/retrofit.py"]


def test_demo_reinstalls_when_pyproject_changes(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    _demo(tree)
    with (tree / "pyproject.toml").open("a") as f:
        f.write("\n# a new dependency, say\n")
    assert _demo(tree)[0].startswith("-m pip install")
    assert _demo(tree) == ["examples/retrofit.py"]
