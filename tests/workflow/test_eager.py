"""Eager execution on Celery: the worker holding a workflow's claim runs its next steps
itself, under that one fenced claim, instead of one broker message (and one claim) per step;
and a worker SIGKILLed in the middle of such a run is replaced by a live one once its claim
is freed, with every step applied and at most the one in flight applied twice.

How many claims a workflow took is read from the store's fence counter (it grows by one per
claim): one claim per step is what the executor did before eager execution (``--batch 1``).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import pytest
import wf_programs as wp
from wf_support import REDIS, REPORTS, Procs, owner_pid, subprocess_env, wait_for

from coroutine.workflow import CeleryExecutor, Engine

STEPS = 30
DELAY = 0.02  # each step's work: the kill lands inside a run of steps


def claims_of(engine: Engine, wid: str) -> int:
    """How many claims workflow `wid` has had (its fence counter)."""
    store: Any = engine.store
    if hasattr(store, "_r"):
        return int(store._r.hget(store._k("wf", wid), "fence"))
    sql = store._d.sql("SELECT fence FROM {p}_workflows WHERE id = ?")
    return int(store._db.execute(sql, (wid,)).fetchone()[0])


def _supervised(e: Engine) -> threading.Thread:
    t = threading.Thread(target=e.run, kwargs={"until_idle": True, "poll": 0.05})
    t.start()  # as `supervise` runs beside Celery workers
    return t


@pytest.mark.parametrize("store", ["sqlite", "postgres", "redis"])
def test_an_eager_run_killed_midway_is_taken_over_by_a_live_worker(
    store: str, request: pytest.FixtureRequest, effects: str, procs: Procs, queue: str
) -> None:
    url = request.getfixturevalue(f"{store}_url")
    env = subprocess_env(effects)
    workers = [
        procs.start(["celery-worker", REDIS, "--queue", queue, "--name", f"e{i}"], env)
        for i in range(2)
    ]
    executor = CeleryExecutor(REDIS, queue=queue)
    with Engine(url, executor) as e:
        wid = e.start(wp.chain, STEPS, DELAY)
        supervisor = _supervised(e)
        try:
            wait_for(lambda: e.info(wid).step >= STEPS // 3, 30, "no worker runs it")
            holder = e.store.get(wid).owner  # type: ignore[union-attr]
            assert holder, "between steps of an eager run, the claim stays held"
            claims_before = claims_of(e, wid)
            victim = next(p for p in workers if p.pid == owner_pid(holder))
            os.killpg(victim.pid, signal.SIGKILL)
            victim.wait()
            killed_at = e.info(wid).step
            assert killed_at < STEPS, "the workflow ended before the kill"
        finally:
            supervisor.join(60)
        assert not supervisor.is_alive()
        assert e.result(wid) == wp.expected_chain(STEPS)
        _, extra = wp.extra_runs(effects, wid, STEPS)
        assert extra <= 1, extra  # one kill: at most the step in flight ran twice
        claims = claims_of(e, wid)
    executor.close()
    # Before the kill: one claim ran a third of the steps (not one claim per step); after
    # it, a handful (the live worker's, in slices), not one per remaining step.
    assert claims_before == 1, claims_before
    assert claims - claims_before < (STEPS - killed_at) // 2, (claims, killed_at)
    REPORTS.append(
        f"eager Celery, {store} store: killed at step {killed_at}; {claims} claims for "
        f"{STEPS} steps; {extra} runs beyond the first"
    )


def test_batch_1_sends_every_step_through_the_broker(
    redis_url: str, effects: str, procs: Procs, queue: str
) -> None:
    args = ["celery-worker", REDIS, "--queue", queue, "--name", "n0", "--batch", "1"]
    procs.start(args, subprocess_env(effects))
    executor = CeleryExecutor(REDIS, queue=queue)
    with Engine(redis_url, executor) as e:
        wid = e.start(wp.chain, 5)
        wait_for(lambda: e.status(wid) != "running", 30, "not done")
        assert e.result(wid) == wp.expected_chain(5)
        assert claims_of(e, wid) == 6  # a claim per message: five steps and the return
    executor.close()


def test_an_eager_run_yields_the_worker_after_its_time_slice(
    redis_url: str, effects: str, procs: Procs, queue: str
) -> None:
    args = ["celery-worker", REDIS, "--queue", queue, "--name", "t0", "--eager-seconds", "0.2"]
    procs.start(args, subprocess_env(effects))
    executor = CeleryExecutor(REDIS, queue=queue)
    with Engine(redis_url, executor) as e:
        wid = e.start(wp.chain, 10, 0.1)  # a second of steps: at least five slices
        t = time.monotonic()
        wait_for(lambda: e.status(wid) != "running", 30, "not done")
        assert e.result(wid) == wp.expected_chain(10)
        elapsed = time.monotonic() - t
        # Each slice begins steps for 0.2 s, so ends within a step after it: 3 steps at most.
        assert claims_of(e, wid) >= 10 // 3, (claims_of(e, wid), elapsed)
    executor.close()
