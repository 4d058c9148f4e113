"""examples/approval_workflow.py runs as documented, on SQLite and on Redis: an approval
in time, one after the reminder timer, and none (the receive times out)."""

from __future__ import annotations

import subprocess
import sys

from wf_support import ROOT, subprocess_env

EXAMPLE = ROOT / "examples" / "approval_workflow.py"

EXPECTED = """\
E1: approved by ana, payment-E1
E2: approved by bo, payment-E2
E3: refused (no decision in time)
E1: mail: please approve 40
E1: paid 40
E2: mail: please approve 900
E2: mail: reminder: an expense waits for you
E2: paid 900
E3: mail: please approve 15
E3: mail: reminder: an expense waits for you
"""


def _run(*args: str) -> str:
    cmd = [sys.executable, str(EXAMPLE), *args]
    out = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_approval_example_on_sqlite() -> None:
    assert _run() == EXPECTED


def test_approval_example_on_redis(redis_url: str) -> None:
    assert _run("--store", redis_url) == EXPECTED
