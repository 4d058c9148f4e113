"""Waits are fenced like commits: a worker whose claim was taken over changes nothing by
waiting, taking a message or setting an event; on each store, directly, and with a real
worker SIGSTOPped past its lease while it receives."""

from __future__ import annotations

import os
import random
import signal
import threading
import time

import pytest
import wf_programs as wp
import wf_wait_programs as ww
from wf_backends import raw_due
from wf_support import Procs, owner_pid, subprocess_env, wait_for

from coroutine.workflow import Engine


def test_a_stale_claim_changes_nothing_and_a_message_waits_for_its_step(
    store_url: str,
) -> None:
    with Engine(store_url) as e:
        wid = e.start(ww.collect, 1)
        e.send(wid, "m", "first")
        s = e.store
        old = s.claim("old", time.time(), 30)
        assert old is not None and s.release(old, 0.0, "")  # as if its lease ran out
        new = s.claim("new", time.time(), 30)
        assert new is not None and new.fence == old.fence + 1
        now = time.time()
        assert not s.suspend(old, now + 100, "sleep", now)
        assert s.take(old, "m") == (False, None)
        assert not s.set_event(old, "k", '"v"')
        assert s.get_event(wid, "k") is None
        assert s.get(wid).owner == "new"  # type: ignore[union-attr]
        # The stale worker took nothing: the current one gets the message, and so does a
        # retry of the same step (its commit may never have happened), not a later step.
        assert s.take(new, "m") == (True, '"first"')
        assert s.take(new, "m") == (True, '"first"')
        assert s.take(new._replace(step=1), "m") == (True, None)
        # Waiting for a topic with a message not yet taken at this step: due at once.
        e.send(wid, "m", "second")
        assert s.suspend(new._replace(step=1), now + 100, "receive:m", now)
        assert raw_due(e, wid) == now
        assert s.get(wid).owner == ""  # type: ignore[union-attr]


@pytest.mark.parametrize("store", ["sqlite", "postgres", "redis"])
def test_a_worker_stopped_past_its_lease_while_receiving_loses_and_doubles_no_value(
    store: str, request: pytest.FixtureRequest, effects: str, procs: Procs
) -> None:
    url = request.getfixturevalue(f"{store}_url")
    rng = random.Random()
    env = subprocess_env(effects)
    args = ["worker", url, "--lease", "1"]
    workers = {p.pid: p for p in (procs.start(args, env) for _ in range(2))}
    n = 5
    with Engine(url) as e:
        wid = e.start(ww.inbox, n, "m", 0.3)
        for v in range(n):
            e.send(wid, "m", v)
        for _ in range(2):
            wait_for(lambda: e.info(wid).owner or e.status(wid) != "running", 30, "no claim")
            time.sleep(rng.uniform(0.0, 0.3))
            owner = e.info(wid).owner
            if not owner:
                continue
            stalled = workers[owner_pid(owner)]
            os.killpg(stalled.pid, signal.SIGSTOP)
            time.sleep(rng.uniform(1.3, 1.8))  # past the lease: the other worker takes over
            os.killpg(stalled.pid, signal.SIGCONT)
        wait_for(lambda: e.status(wid) != "running", 60, "the workflow does not finish")
        assert e.result(wid) == list(range(n))
        steps = e.steps(wid)
        assert [s.result for s in steps if s.activity == "coroutine.workflow:receive"] == [
            ("value", v) for v in range(n)
        ]
    counts = wp.effect_counts(effects)
    assert sorted(int(k.split(":")[1]) for k in counts) == [1, 3, 5, 7, 9]


def test_a_join_whose_child_ended_meanwhile_is_due_at_once(store_url: str, effects: str) -> None:
    """The child ended after the parent's worker looked at it and before it suspended (the
    child's wake-up found the parent still held): the suspend sees the end itself."""
    with Engine(store_url) as e:
        parent = e.start(ww.collect, 1)
        claim = e.store.claim("w", time.time(), 30, id=parent, step=0)
        assert claim is not None
        running = e.start(wp.small, 1)
        now, far = time.time(), time.time() + 100
        assert e.store.suspend(claim, far, f"join:{running}", now)
        assert raw_due(e, parent) == far  # the child runs: the parent sleeps
        claim = e.store.claim("w", far, 30, id=parent, step=0)
        assert claim is not None
        e.run()  # the child ends (the parent is not due before `far`)
        assert e.status(running) == "done"
        assert e.store.suspend(claim, far, f"join:{running}", now)
        assert raw_due(e, parent) == now


def _send_at(go: threading.Barrier, e: Engine, wid: str) -> None:
    go.wait()
    e.send(wid, "m", 1)


@pytest.mark.parametrize("store", ["sqlite", "postgres", "redis"])
def test_a_value_sent_while_its_workflow_goes_to_sleep_wakes_it(
    store: str, request: pytest.FixtureRequest
) -> None:
    """A worker finds no value and suspends while `send` runs beside it, many times: either
    it takes the value or the value wakes it, never a workflow asleep with a value waiting
    for it. (On PostgreSQL a send checked the wait before the suspend wrote it, and committed
    after the suspend looked for values, until the send locked the row first.)"""
    url = request.getfixturevalue(f"{store}_url")
    lost = 0
    with Engine(url) as e:
        s = e.store
        for _ in range(50):  # the race was lost 1 time in 7 on PostgreSQL
            wid = e.start(ww.collect, 1)
            claim = s.claim("w", time.time(), 30, id=wid, step=0)
            assert claim is not None
            go = threading.Barrier(2)
            sender = threading.Thread(target=_send_at, args=(go, e, wid))
            sender.start()
            go.wait()
            far = time.time() + 100
            if s.take(claim, "m")[1] is None:  # as the runner does: take, else suspend
                assert s.suspend(claim, far, "receive:m", time.time())
                sender.join()
                lost += raw_due(e, wid) >= far
            sender.join()
    assert lost == 0, f"{lost} workflows asleep with a value sent"
