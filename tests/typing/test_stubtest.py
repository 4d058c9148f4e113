"""`stubs/` and the runtime agree: ``python -m mypy.stubtest coroutine`` passes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def test_stubtest_finds_no_difference_between_stubs_and_runtime() -> None:
    cmd = [
        sys.executable,
        "-m",
        "mypy.stubtest",
        "coroutine",
        "--mypy-config-file",
        str(HERE / "stubtest.ini"),
        "--allowlist",
        str(HERE / "stubtest-allowlist.txt"),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE.parent.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr
