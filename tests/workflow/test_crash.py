"""Crash safety: workers SIGKILLed at random points and restarted, with default settings.

After a workflow finishes: the result is right (each step's answer was used once, in order),
the store holds exactly one record of each step (the full state, one delta per step and the
end, chained: `result` would refuse a step recorded twice), every step's effect was applied
(its idempotency key is in the effects table), and an effect applied twice happened only for
a step in flight when its worker died: at most one extra run per kill. A killed worker's
claim is freed when its process is gone (not when its 30 s lease runs out), so a restarted
worker takes the step long before the lease would have let it: the test allows a third of the
lease, since the figure includes starting a worker process, which a loaded machine slows (about
0.3-1.3 s on an idle one). The figures are reported at the end of the session.

The seed is printed; WORKFLOW_CRASH_SEED=N replays a run's kill schedule.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import wf_programs as wp
from wf_support import (
    REDIS,
    REPORTS,
    SMALL,
    Procs,
    scaled,
    state_records,
    subprocess_env,
    wait_for,
)

from coroutine.workflow import CeleryExecutor, Engine

STEPS = scaled(200)
LEASE = 30.0  # the default lease, which the workers here run with
DELAY = 0.01  # each activity's work: kills land inside steps, and the run outlasts the kills


def _seed() -> int:
    return int(os.environ.get("WORKFLOW_CRASH_SEED") or random.randrange(1 << 30))


def _kill(p: Any) -> None:
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()


def _check(engine: Engine, wid: str, effects: str, kills: int, label: str, seed: int) -> None:
    info = engine.info(wid)
    assert (info.status, info.step) == ("done", STEPS), f"seed {seed}: {info}"
    assert engine.result(wid) == wp.expected_chain(STEPS)
    assert state_records(engine, wid) == 1 + STEPS + 1
    _, extra = wp.extra_runs(effects, wid, STEPS)
    REPORTS.append(
        f"{label}: {STEPS} steps, {kills} SIGKILLs, {extra} activity runs beyond the first "
        f"(seed {seed})"
    )
    assert extra <= kills, f"{extra} repeated effects for {kills} kills"


@pytest.mark.parametrize("store", ["sqlite", "postgres", "redis"])
def test_workers_killed_at_random_lose_and_repeat_nothing_committed(
    store: str, request: pytest.FixtureRequest, effects: str, procs: Procs
) -> None:
    url = request.getfixturevalue(f"{store}_url")
    seed = _seed()
    rng = random.Random(seed)
    print("seed", seed)
    with Engine(url) as e:
        wid = e.start(wp.chain, STEPS, DELAY)
        env = subprocess_env(effects)
        args = ["worker", url, "--batch", "7"]  # the default lease (30 s)
        workers = [procs.start(args, env) for _ in range(3)]
        kills = 0
        deadline = time.monotonic() + 120
        while e.status(wid) == "running":
            assert time.monotonic() < deadline, f"not done after 120 s (seed {seed})"
            time.sleep(rng.uniform(0.05, 0.3))
            if kills < scaled(12) and e.status(wid) == "running":
                i = rng.randrange(len(workers))
                _kill(workers[i])
                workers[i] = procs.start(args, env)
                kills += 1
        assert kills >= scaled(4), "the workflow ended before the test could kill its workers"
        _check(e, wid, effects, kills, f"{store}, 3 workers", seed)


def test_celery_workers_killed_at_random_lose_and_repeat_nothing_committed(
    redis_url: str, effects: str, procs: Procs, queue: str
) -> None:
    seed = _seed()
    rng = random.Random(seed)
    print("seed", seed)
    env = subprocess_env(effects)

    def start(i: int) -> Any:
        args = ["celery-worker", REDIS, "--queue", queue, "--name", f"w{i}"]
        return procs.start(args, env)

    workers = [start(i) for i in range(3)]
    executor = CeleryExecutor(REDIS, queue=queue)
    with Engine(redis_url, executor) as e:
        wid = e.start(wp.chain, STEPS, 6 * DELAY)
        state = {"kills": 0}
        stop = threading.Event()

        def killer() -> None:
            deadline = time.monotonic() + 150
            while not stop.wait(rng.uniform(0.5, 1.2)):
                if time.monotonic() > deadline:
                    e.stop()  # fail below rather than hang
                    return
                if state["kills"] < scaled(10):
                    i = rng.randrange(len(workers))
                    _kill(workers[i])
                    workers[i] = start(i)
                    state["kills"] += 1

        t = threading.Thread(target=killer)
        t.start()
        try:
            e.run(until_idle=True, poll=0.05)  # supervises: frees dead workers' steps
        finally:
            stop.set()
            t.join()
        assert state["kills"] >= scaled(4), (
            "the workflow ended before the test could kill its workers"
        )
        _check(e, wid, effects, state["kills"], "Celery + Redis, 3 workers", seed)
    executor.close()


def _recovery(e: Engine, wid: str, kill: Callable[[], None], restart: Callable[[], Any]) -> float:
    """Kill the worker holding `wid` mid-run, restart it at once; seconds to the next commit."""
    step = e.info(wid).step
    kill()
    killed = time.monotonic()
    at_kill = e.info(wid).step
    assert at_kill >= step
    restart()
    wait_for(lambda: e.info(wid).step > at_kill, 30, "no commit after the kill")
    return time.monotonic() - killed


@pytest.mark.parametrize("store", ["sqlite", "postgres", "redis", "celery"])
def test_a_killed_worker_is_replaced_long_before_its_lease_runs_out(
    store: str, request: pytest.FixtureRequest, effects: str, procs: Procs, queue: str
) -> None:
    url = request.getfixturevalue(f"{'redis' if store == 'celery' else store}_url")
    env = subprocess_env(effects)
    rng = random.Random(_seed())
    if store == "celery":
        args = ["celery-worker", REDIS, "--queue", queue, "--name", "k"]
        executor: CeleryExecutor | None = CeleryExecutor(REDIS, queue=queue)
    else:
        args, executor = ["worker", url], None
    worker = [procs.start(args, env)]
    times = []
    with Engine(url, executor) as e:
        wid = e.start(wp.chain, 400, 0.02)
        supervisor = threading.Thread(target=e.run, kwargs={"until_idle": False})
        if executor is not None:
            supervisor.start()  # as `supervise` runs beside Celery workers
        try:
            for _ in range(1 if SMALL else 2):
                target = e.info(wid).step + rng.randrange(5, 30)
                wait_for(lambda t=target: e.info(wid).step >= t, 60, "the worker does not run")
                time.sleep(rng.uniform(0, 0.02))  # a random point inside a step

                def restart() -> None:
                    worker[0] = procs.start(args, env)

                times.append(_recovery(e, wid, lambda: _kill(worker[0]), restart))
        finally:
            e.stop()
            if executor is not None:
                supervisor.join()
                executor.close()
        e.cancel(wid)
    REPORTS.append(
        f"{store}: next commit {', '.join(f'{t:.2f}' for t in times)} s after a SIGKILL and "
        "an immediate restart (default lease 30 s)"
    )
    assert max(times) < LEASE / 3, times  # waiting the lease out would take 30 s or more
