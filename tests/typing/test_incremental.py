"""The reachability check stays right with mypy's cache, and under the daemon: cold, warm,
and after edits.

A small project (entry -> middle -> leaf, in three modules; or, for dynamic dispatch, a method
of a base class and an override in a module that main imports only indirectly) is checked
again and again with one cache directory while files are edited; each edit gets a distinct
mtime, since mypy judges freshness by mtime and size. Runs on the mypy of this environment
(2.x), on mypy 1.19, installed on first use into ``.venv-typing-mypy119`` at the repository
root, and under the daemon (``dmypy run``, one daemon kept across the edits), where every
check is compared with a cold run of mypy over the same files.
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

# A callee redefined as a class, its caller untouched: the daemon analyses the caller again
# without reading it anew, and the plugin must see that it now calls the constructor.
MIDDLE_FROM = MIDDLE.replace("from pkg import leaf", "from pkg.leaf import emit").replace(
    "leaf.emit()", "emit()"
)
LEAF_CLASS = """\
from coroutine import Yield

class emit:
    def __init__(self) -> None:
        Yield[str, None]("x")
"""
CLASS_ERROR = re.compile(
    r"main\.py:\d+: error: New\[int, None\] reaches Yield\[str, None\] in "
    r'"pkg\.leaf\.emit\.__init__"'
)

# Dynamic dispatch: main -> shapes.render_all -> Shape.draw, answered by an override in
# pkg.circle, a module that main sees only through pkg.registry.
SHAPES = """\
class Shape:
    def draw(self) -> None: ...

def render_all(shapes: list[Shape]) -> None:
    for s in shapes:
        s.draw()
"""
CIRCLE = """\
from coroutine import Yield
from pkg.shapes import Shape

class Circle(Shape):
    def area(self) -> float:
        return 1.0
"""
CIRCLE_OVERRIDES = (
    CIRCLE
    + """\

    def draw(self) -> None:
        Yield[str, None]("circle")
"""
)
CIRCLE_FITS = CIRCLE_OVERRIDES.replace('Yield[str, None]("circle")', "Yield[int, None](1)")
REGISTRY = "from pkg import circle\n"
MAIN_DISPATCH = """\
from coroutine import New
from pkg.shapes import render_all
import pkg.registry

c = New[int, None](lambda: render_all([]))
"""
DISPATCH_ERROR = re.compile(
    r"main\.py:\d+: error: New\[int, None\] reaches Yield\[str, None\] in "
    r'"pkg\.circle\.Circle\.draw"'
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
    "dmypy-current": lambda: [sys.executable, "-m", "mypy.dmypy"],
    "dmypy-1.19": lambda: [*_old_mypy()[:-1], "mypy.dmypy"],
}


class Project:
    """Files on disk, one mypy cache (or one daemon), and a clock that moves forward at every
    edit."""

    def __init__(self, root: Path, mypy: list[str]) -> None:
        self.root = root
        self.mypy = mypy
        self.daemon = mypy[-1] == "mypy.dmypy"
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

    def _run(self, *args: str) -> str:
        env = dict(os.environ)
        env["MYPYPATH"] = str(ROOT / "stubs")
        env["PYTHONPATH"] = str(ROOT / "src")
        proc = subprocess.run(
            args, cwd=self.root, env=env, capture_output=True, text=True, timeout=300
        )
        assert proc.returncode in (0, 1), proc.stdout + proc.stderr
        return proc.stdout + proc.stderr

    def check(self, *extra: str) -> str:
        if not self.daemon:
            return self._run(*self.mypy, "--cache-dir", ".cache", *extra, "main.py")
        out = self._run(*self.mypy, "--status-file", "dmypy.json", "run", "--", *extra, "main.py")
        cold = self._run(*self.mypy[:-1], "mypy", "--no-incremental", *extra, "main.py")
        assert _errors(out) == _errors(cold), f"dmypy:\n{out}\ncold mypy:\n{cold}"
        return out

    def stop(self) -> None:
        if self.daemon:
            self._run(*self.mypy, "--status-file", "dmypy.json", "stop")

    def errors(self, *extra: str, error: re.Pattern[str] = ERROR) -> int:
        return len(error.findall(self.check(*extra)))


def _errors(out: str) -> list[str]:
    return sorted(line for line in out.splitlines() if ": error:" in line)


# The daemon of mypy 1.19 (slower to start) runs only the tests that name it.
@pytest.fixture(params=sorted(set(MYPYS) - {"dmypy-1.19"}))
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Project]:
    project = Project(tmp_path, MYPYS[request.param]())
    try:
        yield project
    finally:
        project.stop()


def test_cold_then_warm_cache_report_the_same_error(cached_project: Project) -> None:
    assert cached_project.errors() == 1
    assert cached_project.errors() == 1


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


def test_editing_the_caller(cached_project: Project) -> None:
    # (The daemon reads an edited caller anew in full: nothing of the plugin's to test.)
    project = cached_project
    assert project.errors() == 1
    project.write("main.py", MAIN.replace("New[int, None]", "New[str, None]"))
    assert project.errors() == 0
    project.write("main.py", MAIN + "d = New[int, None](step)\n")
    assert project.errors() == 2


@pytest.fixture(params=["mypy-1.19", "mypy-current"])
def cached_project(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Project]:
    yield Project(tmp_path, MYPYS[request.param]())


@pytest.fixture
def old_daemon(tmp_path: Path) -> Iterator[Project]:
    project = Project(tmp_path, MYPYS["dmypy-1.19"]())
    try:
        yield project
    finally:
        project.stop()


def test_the_daemon_of_mypy_1_19_sees_a_callee_redefined_as_a_class(old_daemon: Project) -> None:
    # Edits of the callee's body, then its kind: mypy 1.x has no end-of-module hook.
    test_a_callee_redefined_as_a_class_without_editing_its_caller(old_daemon)


def test_a_callee_redefined_as_a_class_without_editing_its_caller(project: Project) -> None:
    project.write("pkg/middle.py", MIDDLE_FROM)
    project.write("pkg/leaf.py", LEAF_GOOD)
    assert project.errors(error=CLASS_ERROR) == 0
    project.write("pkg/leaf.py", LEAF_CLASS)
    assert project.errors(error=CLASS_ERROR) == 1
    project.write("pkg/leaf.py", LEAF_GOOD)
    assert project.errors(error=CLASS_ERROR) == 0


def test_a_cosmetic_edit_of_the_callee_leaves_importers_fresh(cached_project: Project) -> None:
    project = cached_project
    assert project.errors() == 1
    project.write("pkg/leaf.py", "# a comment that moves every line\n\n" + LEAF_BAD)
    out = project.check("--verbose")
    assert "Cached module pkg.leaf has same interface" in out
    assert len(ERROR.findall(out)) == 1


def test_adding_and_removing_an_override_in_a_module_main_imports_indirectly(
    project: Project,
) -> None:
    project.write("pkg/shapes.py", SHAPES)
    project.write("pkg/circle.py", CIRCLE)
    project.write("pkg/registry.py", REGISTRY)
    project.write("main.py", MAIN_DISPATCH)
    assert project.errors(error=DISPATCH_ERROR) == 0
    project.write("pkg/circle.py", CIRCLE_OVERRIDES)
    assert project.errors(error=DISPATCH_ERROR) == 1
    assert project.errors(error=DISPATCH_ERROR) == 1  # warm
    project.write("pkg/circle.py", CIRCLE)
    assert project.errors(error=DISPATCH_ERROR) == 0


def test_editing_an_override_in_a_module_main_imports_indirectly(project: Project) -> None:
    project.write("pkg/shapes.py", SHAPES)
    project.write("pkg/circle.py", CIRCLE_FITS)
    project.write("pkg/registry.py", REGISTRY)
    project.write("main.py", MAIN_DISPATCH)
    assert project.errors(error=DISPATCH_ERROR) == 0
    project.write("pkg/circle.py", CIRCLE_OVERRIDES)
    assert project.errors(error=DISPATCH_ERROR) == 1
    project.write("pkg/circle.py", CIRCLE_FITS)
    assert project.errors(error=DISPATCH_ERROR) == 0


def test_parallel_workers_see_each_others_facts(tmp_path: Path) -> None:
    project = Project(tmp_path, MYPYS["mypy-current"]())
    assert project.errors("--num-workers", "2") == 1
    project.write("pkg/leaf.py", LEAF_GOOD)
    assert project.errors("--num-workers", "2") == 0
    project.write("pkg/leaf.py", LEAF_BAD)
    assert project.errors("--num-workers", "2") == 1


def test_the_daemon_says_the_check_is_off_with_its_fine_grained_cache(tmp_path: Path) -> None:
    # Modules loaded from the daemon's cache have no bodies: the plugin says it cannot check.
    project = Project(tmp_path, MYPYS["dmypy-current"]())
    try:
        out = project._run(
            *project.mypy, "--status-file", "dmypy.json", "run", "--",
            "--use-fine-grained-cache", "main.py",
        )  # fmt: skip
    finally:
        project.stop()
    assert "reachability check is off with --use-fine-grained-cache" in out, out
    assert not ERROR.findall(out)


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
