"""What type checkers read for the installed package: the wheel, and an editable install.

Builds the wheel, installs it into a fresh venv, and runs mypy and pyright over `USER_FILE`
as a user's project would see it: each ``# reveal: T`` line must reveal T, each ``# error``
line must be an error, and no other line may be. Then the same with a plain editable install
(``pip install -e .``), which static checkers read because everything it installs is under
``src/``, the stubs through the ``src/coroutine-stubs`` link.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent

USER_FILE = """\
from coroutine import LoadContext, New, NewWithReturn, Run, Yield

def body() -> int:
    got = Yield[int, str](1)
    reveal_type(got)  # reveal: str
    Yield[int, str]("no")  # error
    n: int = Yield[int, str](2)  # error
    reveal_type(LoadContext[int, str]())  # reveal: Context[int, str]
    return len(got)

c = NewWithReturn[int, str](body)
reveal_type(c)  # reveal: Coroutine[int, str, int]
reveal_type(c.Recv())  # reveal: int
reveal_type(Run(c, lambda v: str(v)))  # reveal: int
n: int = Run(NewWithReturn[int, str](body), str)
Run(c, lambda v: v)  # error
New[int, str](lambda x: None)  # error
c.Send(3)  # error
"""

MYPY_REVEAL = re.compile(r':(\d+): note: Revealed type is "(.*)"')
MYPY_ERROR = re.compile(r":(\d+): error:")
PYRIGHT_REVEAL = re.compile(r':(\d+):\d+ - information: Type of ".*" is "(.*)"')
PYRIGHT_ERROR = re.compile(r":(\d+):\d+ - error:")


def _expected() -> tuple[dict[int, str], set[int]]:
    reveals, errors = {}, set()
    for n, line in enumerate(USER_FILE.splitlines(), 1):
        if "# reveal: " in line:
            reveals[n] = line.split("# reveal: ")[1]
        elif line.endswith("# error"):
            errors.add(n)
    return reveals, errors


def _assert_output(out: str, reveal: re.Pattern[str], error: re.Pattern[str]) -> None:
    reveals, errors = _expected()
    got_reveals = {int(m[1]): m[2].replace("coroutine.", "") for m in reveal.finditer(out)}
    got_errors = {int(m[1]) for m in error.finditer(out)}
    assert got_reveals == reveals, out
    assert got_errors == errors, out


def _check_both(python: Path, project: Path) -> None:
    (project / "user.py").write_text(USER_FILE)
    (project / "pyrightconfig.json").write_text("{}")
    mypy = subprocess.run(
        [
            *(sys.executable, "-m", "mypy", "--python-executable", str(python)),
            *("--no-incremental", "--config-file", "/dev/null", "user.py"),
        ],
        cwd=project,
        capture_output=True,
        text=True,
    )
    _assert_output(mypy.stdout + mypy.stderr, MYPY_REVEAL, MYPY_ERROR)
    pyright = shutil.which("pyright", path=str(Path(sys.executable).parent)) or shutil.which(
        "pyright"
    )
    if pyright is None:
        pytest.skip("pyright is not installed")
    out = subprocess.run(
        [pyright, "--pythonpath", str(python), "user.py"],
        cwd=project,
        capture_output=True,
        text=True,
    )
    _assert_output(out.stdout + out.stderr, PYRIGHT_REVEAL, PYRIGHT_ERROR)


def _venv(where: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True)
    return where / "bin" / "python"


def _pip(python: Path, *args: str) -> None:
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", *args], check=True)


def test_checkers_read_the_stubs_of_the_installed_wheel(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(ROOT)],
        check=True,
    )
    (wheel,) = dist.glob("stackful_coroutines-*.whl")
    python = _venv(tmp_path / "venv")
    _pip(python, str(wheel))
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert (Path(site) / "coroutine-stubs" / "__init__.pyi").is_file()
    assert (Path(site) / "coroutine" / "py.typed").is_file()
    project = tmp_path / "project"
    project.mkdir()
    _check_both(python, project)


def test_checkers_read_the_stubs_of_an_editable_install(tmp_path: Path) -> None:
    python = _venv(tmp_path / "venv")
    _pip(python, "-e", str(ROOT))  # the default editable mode, as users run it
    project = tmp_path / "project"
    project.mkdir()
    _check_both(python, project)
