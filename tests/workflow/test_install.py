"""The documented install path, run as written in a fresh virtual environment.

docs/how-to/workflows.md says: ``pip install stackful-coroutines`` runs workflows on SQLite (the
example's default) with nothing else installed; ``pip install
'stackful-coroutines[workflow]'`` adds Celery over Redis (and the Redis and PostgreSQL
stores); Celery workers must be able to import the workflow's module (PYTHONPATH). This test
does exactly that with this checkout (built without the optional C extension, to keep it
short), then runs the Celery quick start: a worker started as the docs show, and the example
run against it. The suite's own environment cannot show a missing dependency (its dev extra
brings more), so this one starts empty.
"""

from __future__ import annotations

import os
import subprocess
import venv
from pathlib import Path

import pytest
from services import require
from wf_support import REDIS, ROOT, SMALL, Procs, drop_redis, unique

EXAMPLE = ROOT / "examples" / "order_workflow.py"

# About two minutes, mostly pip fetching packages: once per CI run (scripts/test.sh runs the
# primary CPython at full scale, accelerated first), not on every interpreter and mode.
pytestmark = pytest.mark.skipif(
    SMALL or os.environ.get("COROUTINE_PURE", "") not in ("", "0"),
    reason="the install test runs once per CI run: primary CPython, full scale, accelerated",
)


def _run(cmd: list[str], env: dict[str, str], timeout: float = 600) -> str:
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{cmd}:\n{out.stdout}\n{out.stderr}"
    return out.stdout


def test_the_documented_install_and_celery_quick_start_work_in_a_fresh_venv(
    tmp_path: Path, procs: Procs
) -> None:
    require("redis")  # the quick start's broker
    home = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(home)
    py = str(home / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(COROUTINE_PURE_BUILD="1", PIP_DISABLE_PIP_VERSION_CHECK="1", C_FORCE_ROOT="1")
    env["ORDER_LEDGER"] = str(tmp_path / "ledger.db")
    env["TMPDIR"] = str(tmp_path)  # where the example's default store goes
    pip = [py, "-m", "pip", "install", "-q"]

    _run([*pip, str(ROOT)], env)  # pip install stackful-coroutines
    sqlite_run = _run([py, str(EXAMPLE)], env)  # its default store: SQLite, in TMPDIR
    assert sqlite_run.startswith("order A1: shipped T-A1, charged 10\n")
    assert (tmp_path / "orders.db").is_file()
    missing = subprocess.run([py, "-c", "import celery"], env=env, capture_output=True)
    assert missing.returncode != 0  # the SQLite run above needed none of the extra

    _run([*pip, f"{ROOT}[workflow]"], env)  # pip install 'stackful-coroutines[workflow]'
    queue, prefix = unique("q"), unique("i")
    worker_env = dict(env, PYTHONPATH=str(EXAMPLE.parent))  # "workers must import it"
    try:
        procs.python = py
        procs.start(["celery-worker", REDIS, "--queue", queue, "--name", "install"], worker_env)
        store = f"{REDIS}?prefix={prefix}"
        out = _run([py, str(EXAMPLE), "--celery", REDIS, "--queue", queue, "--store", store], env)
        assert out.splitlines()[:3] == [
            "order A1: shipped T-A1, charged 10",
            "order B2: cancelled (no carrier delivers to 'nowhere'), refunded 12",
            "order C3: rejected (only 2 mugs left, 5 wanted)",
        ]
    finally:
        procs.stop_all()
        drop_redis(queue)
        drop_redis(prefix)
