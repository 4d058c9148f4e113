"""Concurrency: 1,000 small workflows across 4 worker processes all finish, none twice.

"None twice": each workflow commits exactly its 2 steps, and each step's effect is applied
exactly once (no worker dies here, so at-least-once must be exactly once).
"""

from __future__ import annotations

import time

import pytest
import wf_programs as wp
from wf_support import REDIS, Procs, scaled, subprocess_env

from coroutine.workflow import CeleryExecutor, Engine

N = scaled(1000)


def _check(e: Engine, ids: list[str], effects: str) -> set[int]:
    rows = {r.id: r for r in e.list()}
    assert [rows[i].status for i in ids] == ["done"] * N
    assert {rows[i].step for i in ids} == {2}
    assert [e.result(i) for i in ids[:50]] == [n * 7 % 1000 + (n + 1) * 7 % 1000 for n in range(50)]
    counts = wp.effect_counts(effects)
    assert set(counts) == {f"{i}:{k}" for i in ids for k in (0, 1)}
    assert set(counts.values()) == {1}
    pids = {p for (p,) in wp.effects_db(effects).execute("SELECT DISTINCT pid FROM effects")}
    return pids


def test_a_thousand_workflows_on_four_sqlite_workers(
    sqlite_url: str, effects: str, procs: Procs
) -> None:
    with Engine(sqlite_url) as e:
        ids = [e.start(wp.small, n) for n in range(N)]
        env = subprocess_env(effects)
        workers = [procs.start(["worker", sqlite_url, "--until-idle"], env) for _ in range(4)]
        for w in workers:
            assert w.wait(timeout=180) == 0, procs.log_of(w)
        pids = _check(e, ids, effects)
    assert len(pids) >= 3, f"the work went to {len(pids)} of 4 workers"


def test_a_thousand_workflows_on_four_celery_workers(
    redis_url: str, effects: str, procs: Procs, queue: str
) -> None:
    env = subprocess_env(effects)
    for i in range(4):
        procs.start(["celery-worker", REDIS, "--queue", queue, "--name", f"c{i}"], env)
    executor = CeleryExecutor(REDIS, queue=queue)
    with Engine(redis_url, executor) as e:
        ids = [e.start(wp.small, n) for n in range(N)]
        deadline = time.monotonic() + 180
        while e.store.count_running():
            assert time.monotonic() < deadline, "not done after 180 s"
            time.sleep(0.1)
        pids = _check(e, ids, effects)
    executor.close()
    assert len(pids) >= 3, f"the work went to {len(pids)} of 4 workers"


@pytest.mark.parametrize("store", ["redis", "postgres"])
def test_workflows_on_four_workers_over_a_shared_store(
    store: str, request: pytest.FixtureRequest, effects: str, procs: Procs
) -> None:
    """The Redis and PostgreSQL claims under contention: every workflow once, none twice."""
    url = request.getfixturevalue(f"{store}_url")
    n = scaled(400)
    with Engine(url) as e:
        ids = [e.start(wp.small, k) for k in range(n)]
        env = subprocess_env(effects)
        workers = [procs.start(["worker", url, "--until-idle"], env) for _ in range(4)]
        for w in workers:
            assert w.wait(timeout=180) == 0, procs.log_of(w)
        rows = {r.id: r for r in e.list()}
        assert [(rows[i].status, rows[i].step) for i in ids] == [("done", 2)] * n
        counts = wp.effect_counts(effects)
        assert set(counts) == {f"{i}:{k}" for i in ids for k in (0, 1)}
        assert set(counts.values()) == {1}
