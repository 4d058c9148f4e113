"""``async def`` activities: run on each worker process's one event loop, recorded, retried
and keyed as synchronous ones, and crash-safe, with real workers on every store and Celery.

Each store's test runs one workflow of async steps on a worker process that is SIGKILLed
inside an activity (while it awaits) and replaced: every step's effect applied, at most one
of them twice; every step of one process ran on one loop, in the loop's own thread; and a
retried async activity whose attempts are counted in the effects database.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import pytest
import wf_async as wa
import wf_programs as wp
from wf_support import REDIS, REPORTS, Procs, subprocess_env, wait_for

from coroutine.workflow import CeleryExecutor, Engine

STEPS = 6
DELAY = 0.2  # each activity awaits this long: the kill lands inside one


def _kill(p: Any) -> None:
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()


def _check(e: Engine, wid: str, rid: str, effects: str, label: str) -> None:
    assert e.result(wid) == wp.expected_chain(STEPS)
    assert e.result(rid) == "ok after 3"  # two failed attempts, retried by the engine
    assert [s.activity for s in e.steps(wid)] == ["wf_async:aapply"] * STEPS
    assert [s.result for s in e.steps(wid)] == wp.expected_chain(STEPS)
    counts = {k: n for k, n in wp.effect_counts(effects).items() if k.startswith(wid)}
    assert set(counts) == {f"{wid}:{k}" for k in range(STEPS)}
    extra = sum(n - 1 for n in counts.values())
    assert extra <= 1, counts  # one kill: at most the activity in flight runs again
    rows = wp.effects_db(effects).execute(
        "SELECT value, pid FROM effects WHERE key LIKE ?", (f"{wid}:%",)
    )
    loops: dict[int, set[str]] = {}
    for value, pid in rows:
        where_pid, thread, loop = value.split("/")
        assert int(where_pid) == pid and thread == "coroutine.workflow activity loop", value
        loops.setdefault(pid, set()).add(loop)
    assert all(len(ids) == 1 for ids in loops.values()), loops  # one loop per process
    REPORTS.append(f"async activities, {label}: {extra} runs beyond the first after 1 SIGKILL")


def test_async_activities_on_a_worker_killed_mid_await_on_every_store(
    store_url: str, effects: str, procs: Procs
) -> None:
    env = subprocess_env(effects)
    args = ["worker", store_url]
    with Engine(store_url) as e:
        wid = e.start(wa.achain, STEPS, DELAY)
        rid = e.start(wa.retried, 2)
        worker = procs.start(args, env)
        wait_for(lambda: e.info(wid).step >= 2, 30, "the worker does not run")
        time.sleep(DELAY / 2)
        _kill(worker)
        procs.start(args, env)
        wait_for(lambda: e.status(wid) != "running" and e.status(rid) != "running", 30, "done")
        _check(e, wid, rid, effects, store_url.partition(":")[0])


def test_async_activities_on_celery_with_a_worker_killed_mid_await(
    redis_url: str, effects: str, procs: Procs, queue: str
) -> None:
    env = subprocess_env(effects)
    args = ["celery-worker", REDIS, "--queue", queue, "--name", "a0"]
    worker = procs.start(args, env)
    executor = CeleryExecutor(REDIS, queue=queue)
    with Engine(redis_url, executor) as e:
        wid = e.start(wa.achain, STEPS, DELAY)
        rid = e.start(wa.retried, 2)
        supervisor = threading.Thread(target=e.run, kwargs={"until_idle": True, "poll": 0.05})
        supervisor.start()  # as `supervise` runs beside Celery workers
        try:
            wait_for(lambda: e.info(wid).step >= 2, 30, "the worker does not run")
            time.sleep(DELAY / 2)
            _kill(worker)
            procs.start(args, env)
        finally:
            supervisor.join(60)
        assert not supervisor.is_alive()
        _check(e, wid, rid, effects, "celery")
    executor.close()


def test_a_retried_async_activity_that_keeps_failing_raises_at_the_call(
    sqlite_url: str, effects: str
) -> None:
    with Engine(sqlite_url) as e:
        id = e.start(wa.retried, 5)
        e.run()
        assert e.result(id) == f"gave up: attempt 3 of {id}:0 declined"  # 3 attempts in all
    assert wp.effect_counts(effects) == {f"{id}:0": 3}


def test_outside_a_workflow_an_async_activity_runs_on_the_loop_and_returns() -> None:
    first, second = wa.awhere(), wa.awhere()
    assert first == second  # the same loop, not a new one per call
    pid, thread, _ = first.split("/")
    assert (int(pid), thread) == (os.getpid(), "coroutine.workflow activity loop")
    assert wa.awhere.is_async and not wp.apply.is_async


def test_an_async_activity_calling_another_is_refused_with_what_to_do() -> None:
    with pytest.raises(RuntimeError, match=r"await its coroutine instead.*\.fn\(\.\.\.\)"):
        wa.nested()
