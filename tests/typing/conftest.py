"""Shared setup for the typing tests: the YAML cases use tests/typing/mypy.ini."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

HERE = Path(__file__).parent
ROOT = HERE.parent.parent


def pytest_configure(config: pytest.Config) -> None:
    # pytest-mypy-plugins runs the `mypy` found on PATH: make it this interpreter's.
    bindir = str(Path(sys.executable).parent)
    if os.environ.get("PATH", "").split(os.pathsep)[0] != bindir:
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    # The stubs are read from the work tree (mypy_path wins over any installed copy).
    os.environ["MYPYPATH"] = str(ROOT / "stubs")
    if not getattr(config.option, "mypy_ini_file", None) and not getattr(
        config.option, "mypy_pyproject_toml_file", None
    ):
        config.option.mypy_ini_file = str(HERE / "mypy.ini")
    # Each run its own base directory (the default, /tmp, shares one mypy cache between
    # concurrent runs, whose results then depend on each other).
    if hasattr(config.option, "mypy_testing_base") and config.option.mypy_testing_base in (
        None,
        tempfile.gettempdir(),
    ):
        config.option.mypy_testing_base = tempfile.mkdtemp(prefix="coroutine-typing-")
