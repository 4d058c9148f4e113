"""The typed example pair under mypy with the plugin: one is clean, the other has the one
error the README shows, at the `New` line, with the plugin's error code."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLES = ROOT / "examples"


def run_mypy(
    tmp_path: Path, *files: str, summary: bool = False
) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\nplugins = coroutine.mypy\nstrict = True\n")
    env = {**os.environ, "MYPYPATH": str(ROOT / "stubs")}  # the stubs of this work tree
    cmd = [sys.executable, "-m", "mypy", "--config-file", str(config)]
    cmd += ["--cache-dir", str(tmp_path / "cache"), "--no-color-output"]
    if not summary:
        cmd.append("--no-error-summary")
    return subprocess.run(
        [*cmd, *files], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300
    )


def _line_of(path: Path, needle: str) -> int:
    """The 1-based line of the only line of `path` containing `needle`."""
    hits = [n for n, line in enumerate(path.read_text().splitlines(), 1) if needle in line]
    assert len(hits) == 1, (needle, hits)
    return hits[0]


def test_mypy_with_the_plugin_accepts_the_typed_example(tmp_path: Path) -> None:
    out = run_mypy(tmp_path, "examples/typed.py")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout == ""


def test_mypy_with_the_plugin_rejects_the_broken_twin_at_its_new_call(tmp_path: Path) -> None:
    out = run_mypy(tmp_path, "examples/typed_broken.py")
    assert out.returncode == 1, out.stdout + out.stderr
    errors = out.stdout.splitlines()
    assert len(errors) == 1, errors
    line = _line_of(EXAMPLES / "typed_broken.py", "New[int, None](")
    assert errors[0].startswith(f"examples/typed_broken.py:{line}: error: New[int, None] reaches ")
    assert "Yield[str, None]" in errors[0]
    assert "<lambda> -> typed_broken.copy_upper -> typed_broken.progress" in errors[0]
    assert errors[0].endswith("[coroutine-yield]")


def test_the_readme_shows_the_error_mypy_prints_for_the_broken_twin(tmp_path: Path) -> None:
    """The README's ``text`` block after the ``mypy examples/typed_broken.py`` command is
    exactly what that command prints, run as the README shows: from the clone's root, with
    the repository's own mypy configuration (pyproject.toml), which must load the plugin."""
    readme = (ROOT / "README.md").read_text()
    shown = re.search(r"\$ mypy examples/typed_broken.py\n(.*?)```", readme, flags=re.DOTALL)
    assert shown, "README has no block showing `$ mypy examples/typed_broken.py`"
    cmd = [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache")]
    cmd += ["--no-color-output", "examples/typed_broken.py"]
    env = {k: v for k, v in os.environ.items() if k not in ("MYPYPATH", "MYPY_CONFIG_FILE")}
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert shown.group(1) == out.stdout, out.stderr
