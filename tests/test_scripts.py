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

import pytest

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


# -- scripts/test.sh: what a fresh machine needs, and what CI requires --------------------------

_TOOLS = ("bash", "dirname", "sort", "head", "tr")  # what test.sh runs before its venvs


def _one_python_path(tmp_path: Path) -> dict[str, str]:
    """An environment whose PATH holds this CPython and the shell tools test.sh uses, and
    nothing else: a fresh machine with one supported Python."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    for tool in _TOOLS:
        found = shutil.which(tool)
        assert found is not None, tool
        (bin_ / tool).symlink_to(found)
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    (bin_ / f"python{version}").symlink_to(Path(sys.executable).resolve())
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYENV_ROOT")}
    return {**env, "PATH": str(bin_), "HOME": str(tmp_path), "PYENV_ROOT": str(tmp_path)}


def _check(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "test.sh"), "--check", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_test_sh_runs_with_any_one_cpython(tmp_path: Path) -> None:
    proc = _check(_one_python_path(tmp_path))
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert proc.returncode == 0, proc.stderr
    assert f"CPython {version} (primary {version})" in proc.stdout
    assert "not found, skipped" in proc.stdout


def test_test_sh_under_ci_requires_all_four_cpythons(tmp_path: Path) -> None:
    proc = _check({**_one_python_path(tmp_path), "CI": "true"})
    assert proc.returncode == 1
    assert "CI=true requires CPython 3.10 3.11 3.12 3.13; not found:" in proc.stderr


def test_test_sh_under_ci_fails_at_once_naming_a_missing_service(tmp_path: Path) -> None:
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    env = {**_one_python_path(tmp_path), "CI": "true", "WORKFLOW_TEST_REDIS": _CLOSED}
    proc = _check(env, version)
    assert proc.returncode == 1
    assert "Redis is not reachable at 127.0.0.1:1; start it with: redis-server" in proc.stderr
    proc = _check({**env, "CI": ""}, version)  # not CI: the run goes ahead
    assert proc.returncode == 0, proc.stderr


# -- tests/services.py: a test whose service is down is skipped, or fails under CI -------------

_CLOSED = "redis://127.0.0.1:1/0"  # port 1: nothing listens there

_NEEDS_REDIS = """
from services import require

def test_talks_to_redis():
    require("redis")
"""


def _pytest_needing_redis(tmp_path: Path, ci: str, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_needs_redis.py").write_text(_NEEDS_REDIS)
    shutil.copy(ROOT / "tests" / "conftest.py", tmp_path / "conftest.py")
    shutil.copy(ROOT / "tests" / "services.py", tmp_path / "services.py")
    env = {**os.environ, "CI": ci, "WORKFLOW_TEST_REDIS": _CLOSED}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args, str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


@pytest.mark.parametrize("args", [(), ("-n", "2")], ids=["one process", "pytest-xdist"])
def test_a_missing_service_skips_its_tests_with_one_line_saying_how_to_start_it(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    proc = _pytest_needing_redis(tmp_path, "", *args)
    assert proc.returncode == 0, proc.stdout
    assert "1 skipped" in proc.stdout
    lines = [line for line in proc.stdout.splitlines() if "services not running" in line]
    assert lines == [
        "skipped, services not running: Redis 127.0.0.1:1 (1 tests; start: "
        "redis-server --daemonize yes --port 6379)"
    ]


def test_a_missing_service_fails_its_tests_under_ci(tmp_path: Path) -> None:
    proc = _pytest_needing_redis(tmp_path, ci="true")
    assert proc.returncode == 1
    assert "1 failed" in proc.stdout
    assert "Redis is not reachable at 127.0.0.1:1, and CI=true requires it" in proc.stdout
