"""The plugin's module: where mypy finds it, and that the runtime never loads it."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_runtime_does_not_import_mypy_or_the_plugin() -> None:
    code = (
        "import sys, coroutine, coroutine.types; "
        "print(sorted(m for m in sys.modules if m == 'mypy' or m.startswith(('mypy.', "
        "'coroutine.mypy', 'coroutine._plugin'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_plugin_entry_point_returns_the_plugin_class() -> None:
    from mypy.plugin import Plugin

    import coroutine.mypy

    assert issubclass(coroutine.mypy.plugin("2.4.1"), Plugin)
    assert isinstance(coroutine.mypy.__version__, int)
    assert coroutine.mypy.YIELD_MISMATCH.code == "coroutine-yield"
