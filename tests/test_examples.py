"""Each example runs on its own and prints what it promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str) -> str:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stderr == ""
    return out.stdout


def test_retrofit_example_is_lazy_and_agrees_with_the_generator_version() -> None:
    lines = run_example("retrofit.py").splitlines()
    assert lines[0] == "first three functions in json/__init__.py: dump, dumps, detect_encoding"
    assert lines[-1] == "same as the generator version: True"


def test_retrofit_visitor_is_paused_after_each_name() -> None:
    sys.path.insert(0, str(EXAMPLES))
    try:
        import retrofit
    finally:
        sys.path.remove(str(EXAMPLES))
    names = retrofit.functions_in("def a():\n    def b(): pass\ndef c(): pass\n")
    assert next(names) == "a"
    assert next(names) == "b"
    assert list(names) == ["c"]
