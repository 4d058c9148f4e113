"""examples/order_workflow.py runs as documented: on SQLite, and on Celery over two brokers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from services import require
from wf_support import RABBITMQ, REDIS, ROOT, Procs, drop_amqp, drop_redis, subprocess_env, unique

EXAMPLE = ROOT / "examples" / "order_workflow.py"

EXPECTED = """\
order A1: shipped T-A1, charged 10
order B2: cancelled (no carrier delivers to 'nowhere'), refunded 12
order C3: rejected (only 2 mugs left, 5 wanted)
A1: reserve 1 cake, 2 tea; charge 10; ship to 1 High St
B2: reserve 1 mug; charge 12; refund 12 of P-B2; release R-B2
C3: \n"""


def _env(tmp_path: Path) -> dict[str, str]:
    env = subprocess_env()
    env["ORDER_LEDGER"] = str(tmp_path / "ledger.db")
    env["PYTHONPATH"] = f"{ROOT / 'examples'}:{env['PYTHONPATH']}"
    return env


def _run(env: dict[str, str], *args: str) -> str:
    out = subprocess.run(
        [sys.executable, str(EXAMPLE), *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_order_example_on_sqlite(tmp_path: Path) -> None:
    env = _env(tmp_path)
    assert _run(env, "--store", f"sqlite:///{tmp_path}/orders.db") == EXPECTED


@pytest.mark.parametrize("broker", [REDIS, RABBITMQ], ids=["redis", "rabbitmq"])
def test_order_example_on_celery(tmp_path: Path, procs: Procs, redis_url: str, broker: str) -> None:
    if broker == RABBITMQ:
        require("rabbitmq")
    env = _env(tmp_path)
    queue = unique("q")
    try:
        for i in range(2):
            procs.start(["celery-worker", broker, "--queue", queue, "--name", f"o{i}"], env)
        out = _run(env, "--celery", broker, "--queue", queue, "--store", redis_url)
        assert out == EXPECTED
    finally:
        procs.stop_all()
        if broker == REDIS:
            drop_redis(queue)
        else:
            drop_amqp(queue, [f"o{i}" for i in range(2)])
