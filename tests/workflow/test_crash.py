"""Crash safety: a 200-step workflow, its workers SIGKILLed at random points and restarted.

After it finishes: the result is right (each step's answer was used once, in order), the
row committed exactly 200 steps and the store holds exactly one record of each (the full
state, 200 deltas and the end, chained), every step's effect was applied (its idempotency key is in
the effects table), and an effect applied twice happened only for a step in flight when its
worker died: at most one extra run per kill. The number of extra runs is reported at the end
of the test session.

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
from wf_support import REDIS, REPORTS, Procs, scaled, subprocess_env

from coroutine.workflow import CeleryExecutor, Engine

STEPS = scaled(200)
DELAY = 0.01  # each activity's work: kills land inside steps, and the run outlasts 4 kills


def _seed() -> int:
    return int(os.environ.get("WORKFLOW_CRASH_SEED") or random.randrange(1 << 30))


def _kill_and_restart(
    procs: Procs, workers: list, start: Callable[[int], object], rng: random.Random
) -> None:
    i = rng.randrange(len(workers))
    os.killpg(workers[i].pid, signal.SIGKILL)
    workers[i].wait()
    workers[i] = start(i)


def _frames(engine: Engine, wid: str) -> int:
    store: Any = engine.store
    if hasattr(store, "_r"):  # Redis: one list item per frame
        return int(store._r.llen(store._st(wid)))
    (n,) = store._db.execute("SELECT count(*) FROM cw_states WHERE wf = ?", (wid,)).fetchone()
    return int(n)


def _check(engine: Engine, wid: str, effects: str, kills: int, label: str, seed: int) -> None:
    row = engine.store.get(wid)
    assert row is not None and row.status == "done", f"seed {seed}: {row}"
    assert engine.result(wid) == wp.expected_chain(STEPS)
    assert engine.store.get(wid).step == STEPS  # type: ignore[union-attr]
    # Recorded once: the full state, one delta per step, one for the end; the deltas chain,
    # so result() above (Unmarshal of them all) would refuse a step recorded twice.
    assert _frames(engine, wid) == 1 + STEPS + 1
    counts = wp.effect_counts(effects)
    assert set(counts) == {f"{wid}:{k}" for k in range(STEPS)}
    extra = sum(n - 1 for n in counts.values())
    REPORTS.append(
        f"{label}: {STEPS} steps, {kills} SIGKILLs, {extra} activity runs beyond the first "
        f"(seed {seed})"
    )
    assert extra <= kills, f"{extra} repeated effects for {kills} kills"


def test_sqlite_workers_killed_at_random_lose_and_repeat_nothing_committed(
    sqlite_url: str, effects: str, procs: Procs
) -> None:
    seed = _seed()
    rng = random.Random(seed)
    print("seed", seed)
    with Engine(sqlite_url) as e:
        wid = e.start(wp.chain, STEPS, DELAY)
        env = subprocess_env(effects)
        args = ["worker", sqlite_url, "--lease", "1", "--batch", "7"]
        workers = [procs.start(args, env) for _ in range(3)]
        kills = 0
        deadline = time.monotonic() + 150
        while e.status(wid) == "running":
            assert time.monotonic() < deadline, f"not done after 150 s (seed {seed})"
            time.sleep(rng.uniform(0.05, 0.3))
            if kills < scaled(12) and e.status(wid) == "running":
                _kill_and_restart(procs, workers, lambda i: procs.start(args, env), rng)
                kills += 1
        assert kills >= scaled(4), "the workflow ended before the test could kill its workers"
        _check(e, wid, effects, kills, "SQLite, 3 workers", seed)


def test_celery_workers_killed_at_random_lose_and_repeat_nothing_committed(
    redis_url: str, effects: str, procs: Procs, queue: str
) -> None:
    seed = _seed()
    rng = random.Random(seed)
    print("seed", seed)
    env = subprocess_env(effects)

    def start(i: int) -> object:
        args = ["celery-worker", REDIS, "--queue", queue, "--name", f"w{i}", "--lease", "1"]
        return procs.start(args, env)

    workers = [start(i) for i in range(3)]
    executor = CeleryExecutor(REDIS, queue=queue)
    with Engine(redis_url, executor, lease=1.0) as e:
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
                    _kill_and_restart(procs, workers, start, rng)
                    state["kills"] += 1

        t = threading.Thread(target=killer)
        t.start()
        try:
            e.run(until_idle=True, poll=0.2)  # supervises: resubmits steps of dead workers
        finally:
            stop.set()
            t.join()
        row = e.store.get(wid)
        assert row is not None and row.status == "done", f"seed {seed}: {row}"
        assert state["kills"] >= scaled(4), (
            "the workflow ended before the test could kill its workers"
        )
        _check(e, wid, effects, state["kills"], "Celery + Redis, 3 workers", seed)
    executor.close()


@pytest.mark.parametrize("kill_at", [0.2])
def test_a_step_claimed_by_a_dead_worker_is_taken_after_its_lease(
    sqlite_url: str, effects: str, procs: Procs, kill_at: float
) -> None:
    """The lease, alone: one worker killed mid-run, the other takes over only after 2 s."""
    with Engine(sqlite_url) as e:
        wid = e.start(wp.chain, 40, 0.02)
        env = subprocess_env(effects)
        first = procs.start(["worker", sqlite_url, "--lease", "2", "--batch", "1000"], env)
        while not wp.effect_counts(effects):
            time.sleep(0.02)
        time.sleep(kill_at)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        killed_at = time.monotonic()
        step_at_kill = e.store.get(wid).step  # type: ignore[union-attr]
        procs.start(["worker", sqlite_url, "--lease", "2"], env)
        while e.store.get(wid).step == step_at_kill:  # type: ignore[union-attr]
            time.sleep(0.02)
        waited = time.monotonic() - killed_at
        assert 1.0 < waited < 6.0, f"taken over after {waited:.2f} s with a 2 s lease"
        while e.status(wid) == "running":
            time.sleep(0.05)
        assert e.result(wid) == wp.expected_chain(40)
