"""Stalls: a worker stopped (SIGSTOP) past its lease at random points, on each store.

A stopped worker's claim passes to the other worker once its lease runs out (on Redis, once
its 1 s liveness key lapses). When the stopped worker wakes, the store refuses its commit and
its heartbeat (the claim is fenced), and it stops before running another activity: so each
stall repeats at most the one activity it interrupted, and nothing the stale worker does is
committed (the store holds exactly one record per step, and the result is right).
"""

from __future__ import annotations

import os
import random
import signal
import time

import pytest
import wf_programs as wp
from wf_support import (
    REPORTS,
    SMALL,
    Procs,
    owner_pid,
    scaled,
    state_records,
    subprocess_env,
    wait_for,
)

from coroutine.workflow import Engine

STEPS = 6 if SMALL else 12
DELAY = 0.4  # seconds per activity: a stall lands inside one, or between two


@pytest.mark.parametrize("store", ["sqlite", "postgres", "redis"])
def test_a_worker_stopped_past_its_lease_commits_nothing_and_repeats_at_most_one_step(
    store: str, request: pytest.FixtureRequest, effects: str, procs: Procs
) -> None:
    url = request.getfixturevalue(f"{store}_url")
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    env = subprocess_env(effects)
    args = ["worker", url, "--lease", "1"]
    workers = {p.pid: p for p in (procs.start(args, env) for _ in range(2))}
    stalls = 0
    with Engine(url) as e:
        wid = e.start(wp.chain, STEPS, DELAY)
        while e.status(wid) == "running" and stalls < scaled(12) // 4 + 1:
            wait_for(lambda: e.info(wid).owner, 30, "nobody claims the workflow")
            time.sleep(rng.uniform(0.0, 0.8))  # anywhere in a step, or between steps
            owner = e.info(wid).owner
            if not owner:
                continue
            stalled = workers[owner_pid(owner)]
            os.killpg(stalled.pid, signal.SIGSTOP)
            time.sleep(rng.uniform(1.3, 2.0))  # past the lease, not past two
            os.killpg(stalled.pid, signal.SIGCONT)
            stalls += 1
        wait_for(lambda: e.status(wid) != "running", 60, "the workflow does not finish")
        assert e.result(wid) == wp.expected_chain(STEPS)
        assert state_records(e, wid) == 1 + STEPS + 1  # no stale commit, no lost one
    counts, extra = wp.extra_runs(effects, wid, STEPS)
    REPORTS.append(
        f"{store}: {STEPS} steps of {DELAY} s, {stalls} SIGSTOPs of 1.3-2 s past a 1 s lease, "
        f"{extra} activity runs beyond the first (seed {seed})"
    )
    # At most one repeat per stall: two stalls inside one step (each owner stopped in turn)
    # may run that step three times, which is still one repeat each.
    assert extra <= stalls, (counts, stalls, seed)


@pytest.mark.parametrize("store", ["sqlite"] if SMALL else ["sqlite", "postgres"])
def test_a_hung_worker_keeps_its_claim_until_the_lease_runs_out(
    store: str, request: pytest.FixtureRequest, effects: str, procs: Procs
) -> None:
    """A stopped process is alive to the operating system and the server: only its lease
    bounds how long its step waits (on Redis, its liveness key lapses in a second)."""
    url = request.getfixturevalue(f"{store}_url")
    env = subprocess_env(effects)
    with Engine(url) as e:
        wid = e.start(wp.chain, 40, 0.05)
        first = procs.start(["worker", url, "--lease", "2"], env)
        wait_for(lambda: e.info(wid).step >= 3, 30, "the worker does not run")
        os.killpg(first.pid, signal.SIGSTOP)
        stopped = time.monotonic()
        step = e.info(wid).step
        procs.start(["worker", url, "--lease", "2"], env)
        wait_for(lambda: e.info(wid).step > step, 30, "the hung worker's step is never taken")
        waited = time.monotonic() - stopped
        os.killpg(first.pid, signal.SIGCONT)
        # Not before the lease ran out; the upper bound allows for a loaded machine (a step
        # waiting for its hung worker forever is what it rules out).
        assert 1.5 < waited < 10.0, f"taken over after {waited:.2f} s with a 2 s lease"
        wait_for(lambda: e.status(wid) != "running", 60, "the workflow does not finish")
        assert e.result(wid) == wp.expected_chain(40)
