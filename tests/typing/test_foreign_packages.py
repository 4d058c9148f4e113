"""The plugin adds no error to a package that type-checks without it.

httpx 0.28.1 re-exports its modules with ``from ._auth import *``: a name the plugin adds to
each module must not travel through those (it once did, as ``Incompatible import of
"__coroutine_reach__"``). Its sources are copied into a project and checked by mypy without
the plugin, with it from a cold cache, and with it again after touching ``httpx/__init__.py``
(which makes mypy analyse the star imports anew against modules read back from the cache):
the three lists of errors must be the same. The larger runs over rich and pytest are in
benchmarks/plugin_cost.py, which compares their outputs the same way.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent.parent


def _mypy(project: Path, config: str, cache: str) -> str:
    env = dict(os.environ, MYPYPATH=str(ROOT / "stubs"), PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            config,
            "--cache-dir",
            cache,
            "-p",
            "httpx",
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    # Errors only: mypy shows its "See ...#missing-imports" note once, at whichever missing
    # import it meets first, which depends on what the cache holds.
    return "\n".join(sorted(line for line in proc.stdout.splitlines() if ": error:" in line))


def test_httpx_gets_the_same_errors_with_and_without_the_plugin(tmp_path: Path) -> None:
    assert httpx.__version__ == "0.28.1"
    source = Path(httpx.__file__).parent
    shutil.copytree(source, tmp_path / "httpx", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "plain.ini").write_text("[mypy]\n")
    (tmp_path / "plugin.ini").write_text("[mypy]\nplugins = coroutine.mypy\n")
    plain = _mypy(tmp_path, "plain.ini", "plain-cache")
    assert "error:" in plain  # httpx has errors of its own under mypy: the same must show
    assert _mypy(tmp_path, "plugin.ini", "plugin-cache") == plain
    init = tmp_path / "httpx" / "__init__.py"
    init.write_text(init.read_text() + "\n# touched\n")
    os.utime(init, (init.stat().st_mtime + 10,) * 2)
    assert _mypy(tmp_path, "plugin.ini", "plugin-cache") == plain  # warm (errors keep lines)
