"""The reachability check stays right with mypy's cache: cold, warm, and after edits.

A small project (entry -> middle -> leaf, in three modules) is checked again and again with one
cache directory while files are edited; each edit gets a distinct mtime, since mypy judges
freshness by mtime and size. Runs on the mypy of this environment (2.x) and on mypy 1.19,
installed on first use into ``.venv-typing-mypy119`` at the repository root.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
OLD_MYPY = "1.19.1"
OLD_VENV = ROOT / ".venv-typing-mypy119"

LEAF_BAD = """\
from coroutine import Yield

def emit() -> None:
    Yield[str, None]("x")
"""
LEAF_GOOD = LEAF_BAD.replace('Yield[str, None]("x")', "Yield[int, None](1)")
MIDDLE = """\
from pkg import leaf

def step() -> None:
    leaf.emit()
"""
MIDDLE_CUT = MIDDLE.replace("leaf.emit()", "pass")
MAIN = """\
from coroutine import New
from pkg.middle import step

def body() -> None:
    step()

c = New[int, None](body)
"""
ERROR = re.compile(
    r'main\.py:\d+: error: New\[int, None\] reaches Yield\[str, None\] in "pkg\.leaf\.emit"'
)


def _old_mypy() -> list[str]:
    python = OLD_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(OLD_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", f"mypy=={OLD_MYPY}", "greenlet"],
            check=True,
        )
    return [str(python), "-m", "mypy"]


MYPYS = {
    "mypy-current": lambda: [sys.executable, "-m", "mypy"],
    "mypy-1.19": _old_mypy,
}


class Project:
    """Files on disk, one mypy cache, and a clock that moves forward at every edit."""

    def __init__(self, root: Path, mypy: list[str]) -> None:
        self.root = root
        self.mypy = mypy
        self.clock = 1_700_000_000.0
        (root / "mypy.ini").write_text("[mypy]\nplugins = coroutine.mypy\n")
        self.write("pkg/__init__.py", "")
        self.write("pkg/leaf.py", LEAF_BAD)
        self.write("pkg/middle.py", MIDDLE)
        self.write("main.py", MAIN)

    def write(self, name: str, text: str) -> None:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        self.clock += 10
        os.utime(path, (self.clock, self.clock))

    def check(self, *extra: str) -> str:
        env = dict(os.environ)
        env["MYPYPATH"] = str(ROOT / "stubs")
        env["PYTHONPATH"] = str(ROOT / "src")
        proc = subprocess.run(
            [*self.mypy, "--cache-dir", ".cache", *extra, "main.py"],
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
        )
        assert proc.returncode in (0, 1), proc.stdout + proc.stderr
        return proc.stdout + proc.stderr

    def errors(self, *extra: str) -> int:
        return len(ERROR.findall(self.check(*extra)))


@pytest.fixture(params=sorted(MYPYS))
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Project]:
    yield Project(tmp_path, MYPYS[request.param]())


def test_cold_then_warm_cache_report_the_same_error(project: Project) -> None:
    assert project.errors() == 1
    assert project.errors() == 1


def test_editing_the_callee_updates_its_importers_importers(project: Project) -> None:
    assert project.errors() == 1
    project.write("pkg/leaf.py", LEAF_GOOD)
    assert project.errors() == 0
    project.write("pkg/leaf.py", LEAF_BAD)
    assert project.errors() == 1


def test_editing_a_module_in_the_middle_of_the_path(project: Project) -> None:
    assert project.errors() == 1
    project.write("pkg/middle.py", MIDDLE_CUT)
    assert project.errors() == 0
    project.write("pkg/middle.py", MIDDLE)
    assert project.errors() == 1


def test_editing_the_caller(project: Project) -> None:
    assert project.errors() == 1
    project.write("main.py", MAIN.replace("New[int, None]", "New[str, None]"))
    assert project.errors() == 0
    project.write("main.py", MAIN + "d = New[int, None](step)\n")
    assert project.errors() == 2


def test_a_cosmetic_edit_of_the_callee_leaves_importers_fresh(project: Project) -> None:
    assert project.errors() == 1
    project.write("pkg/leaf.py", "# a comment that moves every line\n\n" + LEAF_BAD)
    out = project.check("--verbose")
    assert "Cached module pkg.leaf has same interface" in out
    assert len(ERROR.findall(out)) == 1


def test_parallel_workers_see_each_others_facts(tmp_path: Path) -> None:
    project = Project(tmp_path, MYPYS["mypy-current"]())
    assert project.errors("--num-workers", "2") == 1
    project.write("pkg/leaf.py", LEAF_GOOD)
    assert project.errors("--num-workers", "2") == 0
    project.write("pkg/leaf.py", LEAF_BAD)
    assert project.errors("--num-workers", "2") == 1


def test_the_daemon_says_the_check_is_off(tmp_path: Path) -> None:
    Project(tmp_path, MYPYS["mypy-current"]())  # writes the files
    dmypy = [sys.executable, "-m", "mypy.dmypy", "--status-file", str(tmp_path / "dmypy.json")]
    env = dict(os.environ, MYPYPATH=str(ROOT / "stubs"), PYTHONPATH=str(ROOT / "src"))
    try:
        proc = subprocess.run(
            [*dmypy, "run", "--", "main.py"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        subprocess.run([*dmypy, "stop"], cwd=tmp_path, env=env, capture_output=True)
    assert "reachability check is off under dmypy" in proc.stdout, proc.stdout + proc.stderr


def test_the_plugin_types_calls_on_mypy_before_2_2(tmp_path: Path) -> None:
    # mypy < 2.2 ignores the stubs' __new__ return types; the plugin supplies them.
    project = Project(tmp_path, MYPYS["mypy-1.19"]())
    project.write(
        "main.py",
        "from coroutine import LoadContext, New, NewWithReturn, Yield\n"
        "def body() -> int:\n"
        "    reveal_type(Yield[int, str](1))\n"
        "    reveal_type(LoadContext[int, str]())\n"
        "    return 1\n"
        "reveal_type(New[int, str](body))\n"
        "reveal_type(NewWithReturn[int, str](body))\n",
    )
    out = project.check()
    assert 'main.py:3: note: Revealed type is "builtins.str"' in out, out
    assert (
        'main.py:4: note: Revealed type is "coroutine.Context[builtins.int, builtins.str]"' in out
    )
    assert (
        'main.py:6: note: Revealed type is "coroutine.Coroutine[builtins.int, builtins.str, None]"'
        in out
    )
    assert (  # T read from the body
        "main.py:7: note: Revealed type is "
        '"coroutine.Coroutine[builtins.int, builtins.str, builtins.int]"' in out
    )
