"""Queues with a concurrency limit, and time limits, on real worker processes.

The queue tests record, from inside each activity, when it ran; a limit of 1 holds if no two
runs of the queue's workflows overlap, across every worker, also when the worker holding the
slot is SIGKILLed in the middle of a step (its slot must come free with its claim, or the
other workflows would wait forever). Unqueued workflows run beside the queue meanwhile: a
workflow waiting for a slot holds no worker.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
import wf_queue_programs as wq
from wf_backends import raw_due
from wf_support import REDIS, SMALL, Procs, subprocess_env, wait_for

from coroutine.workflow import (
    CeleryExecutor,
    Engine,
    WorkflowTimeoutError,
    workflow,
)

STEPS, SECONDS = 3, 0.2  # per workflow: long enough steps to be killed in one
QUEUED = 3 if SMALL else 4  # workflows in the queue


def _all_done(e: Engine, ids: list[str]) -> bool:
    return all(e.status(i) != "running" for i in ids)


def _kill_mid_step(effects: str) -> tuple[int, float]:
    """SIGKILL the worker running the first queued step still open; (its pid, when)."""
    found: list[int] = []

    def running() -> bool:
        found[:] = [
            p for _, t, p, _, end in wq.spans(effects) if t.startswith("queued") and end is None
        ]
        return bool(found)

    wait_for(running, 60, "a queued step running")
    os.killpg(found[0], signal.SIGKILL)
    return found[0], time.time()


def _check(e: Engine, effects: str, queued: list[str], free: list[str], killed_at: float) -> None:
    assert [e.result(i) for i in queued] == [n + sum(range(STEPS)) for n in range(len(queued))]
    assert [e.result(i) for i in free] == [n + sum(range(STEPS)) for n in range(len(free))]
    spans = wq.spans(effects)
    killed = [s for s in spans if s[4] is None]
    assert len(killed) == 1 and killed[0][1].startswith("queued"), killed  # killed mid-step
    # A killed run ends with its process: at the kill, give or take the signal's delivery.
    q = [
        (s, killed_at if end is None else end)
        for _, t, _, s, end in spans
        if t.startswith("queued")
    ]
    assert len(q) >= len(queued) * STEPS + 1  # every step, and the one run again
    assert wq.most_at_once(q) == 1, "two workflows of a queue of 1 ran at once"
    # The unqueued workflows were not held up by those waiting for the slot: they were
    # done (on the workers the waiting ones did not hold) before the queue's last step.
    free_ends = [end for _, t, _, _, end in spans if t.startswith("free")]
    assert max(free_ends) < max(s for s, _ in q), "waiting workflows held the workers"


def test_a_queue_of_one_runs_one_at_a_time_on_three_workers_one_killed(
    store_url: str, effects: str, procs: Procs
) -> None:
    with Engine(store_url) as e:
        e.set_queue(wq.QUEUE, 1)
        assert e.queues() == {wq.QUEUE: 1}
        queued = [e.start(wq.queued, n, STEPS, SECONDS) for n in range(QUEUED)]
        free = [e.start(wq.free, n, STEPS, SECONDS) for n in range(2)]
        env = subprocess_env(effects)
        for _ in range(3):
            procs.start(["worker", store_url, "--lease", "2"], env)
        _, killed_at = _kill_mid_step(effects)
        wait_for(lambda: _all_done(e, queued + free), 60, "every workflow done")
        _check(e, effects, queued, free, killed_at)


def test_a_queue_of_one_on_celery_workers_one_killed(
    redis_url: str, effects: str, procs: Procs, queue: str
) -> None:
    env = subprocess_env(effects)
    for i in range(3):
        procs.start(["celery-worker", REDIS, "--queue", queue, "--name", f"q{i}"], env)
    executor = CeleryExecutor(REDIS, queue=queue)
    with Engine(redis_url, executor, lease=1.0) as e:
        e.set_queue(wq.QUEUE, 1)
        queued = [e.start(wq.queued, n, STEPS, SECONDS) for n in range(QUEUED)]
        free = [e.start(wq.free, n, STEPS, SECONDS) for n in range(2)]
        supervisor = threading.Thread(target=e.run, kwargs={"until_idle": True, "poll": 0.05})
        supervisor.start()  # frees the dead worker's claims, resubmits its lost step
        try:
            _, killed_at = _kill_mid_step(effects)
            wait_for(lambda: _all_done(e, queued + free), 60, "every workflow done")
        finally:
            e.stop()
            supervisor.join()
        _check(e, effects, queued, free, killed_at)
    executor.close()


def test_a_queue_of_two_runs_two_at_once_and_never_three(
    sqlite_url: str, effects: str, procs: Procs
) -> None:
    with Engine(sqlite_url) as e:
        e.set_queue(wq.QUEUE, 2)
        ids = [e.start(wq.queued, n, STEPS, SECONDS) for n in range(4)]
        env = subprocess_env(effects)
        for _ in range(3):
            procs.start(["worker", sqlite_url], env)
        wait_for(lambda: _all_done(e, ids), 60, "every workflow done")
        assert [e.result(i) for i in ids] == [n + sum(range(STEPS)) for n in range(4)]
    assert wq.most_at_once([(s, end) for _, _, _, s, end in wq.spans(effects)]) == 2


def _limited_run(e: Engine, effects: str, procs: Procs, args: list[str]) -> tuple[str, float]:
    """Start `wq.limited` with a worker up; SIGKILL the worker after 3 steps; start another
    once the time limit has passed. (the workflow's id, when the new worker started)"""
    env = subprocess_env(effects)
    first = procs.start(args, env)
    warm = e.start(wq.free, 0, 1, 0.0)  # once done, the worker is up: the limit starts now
    wait_for(lambda: e.status(warm) == "done", 60, "a worker up")
    id = e.start(wq.limited, 40, 0.1)  # 4 s of steps, 1.5 s allowed
    wait_for(lambda: e.info(id).step >= 3, 30, "three steps")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    time.sleep(max(0.0, e.info(id).created + 1.5 + 0.3 - time.time()))
    restart = time.time()
    procs.start(args, env)
    return id, restart


def _check_timed_out(e: Engine, effects: str, id: str, restart: float) -> None:
    wait_for(lambda: e.status(id) != "running", 60, "the workflow ended")
    with pytest.raises(WorkflowTimeoutError, match="ran past its time limit"):
        e.result(id)
    assert 3 <= e.info(id).step < 40
    late = [s for s in wq.spans(effects) if s[1] == "limited" and s[3] >= restart]
    assert late == [], "a step ran after the time limit"


def test_a_time_limit_survives_the_worker_and_fails_the_next_step(
    store_url: str, effects: str, procs: Procs
) -> None:
    with Engine(store_url) as e:
        id, restart = _limited_run(e, effects, procs, ["worker", store_url, "--lease", "1"])
        _check_timed_out(e, effects, id, restart)


def test_a_time_limit_on_celery_workers(
    redis_url: str, effects: str, procs: Procs, queue: str
) -> None:
    executor = CeleryExecutor(REDIS, queue=queue)
    with Engine(redis_url, executor, lease=1.0) as e:
        args = ["celery-worker", REDIS, "--queue", queue, "--name", "t0"]
        supervisor = threading.Thread(target=e.run, kwargs={"until_idle": False, "poll": 0.05})
        supervisor.start()
        try:
            id, restart = _limited_run(e, effects, procs, args)
            _check_timed_out(e, effects, id, restart)
        finally:
            e.stop()
            supervisor.join()
    executor.close()


def test_queue_and_time_limit_arguments_are_checked(sqlite_url: str) -> None:
    for bad in ({"queue": ""}, {"queue": 3}, {"timeout": 0}, {"timeout": "1"}, {"version": ""}):
        with pytest.raises(TypeError, match="workflow"):
            workflow(**bad)  # type: ignore[arg-type]
    with Engine(sqlite_url) as e:
        for name, n in (("", 1), ("q", 0), ("q", True), ("q", 1.5)):
            with pytest.raises(TypeError):
                e.set_queue(name, n)  # type: ignore[arg-type]
        assert e.queues() == {}
        e.set_queue("q", 3)
        e.set_queue("q", 2)  # replaces
        assert e.queues() == {"q": 2}


def test_racing_claims_never_hold_more_slots_than_the_limit(store_url: str) -> None:
    """Eight threads claim and give back queued rows as fast as they can: PostgreSQL's
    claims run concurrently (SKIP LOCKED), so this is where two claims could each count a
    free slot; the store must still never let two hold one."""
    with Engine(store_url) as e:
        e.set_queue(wq.QUEUE, 1)
        for n in range(40):
            e.start(wq.queued, n, 1, 0.0)
        lock = threading.Lock()
        holding, most, claims = [0], [0], [0]
        give_up = time.monotonic() + 30.0

        def claimer(k: int) -> None:
            while claims[0] < 30 and time.monotonic() < give_up:
                c = e.store.claim(f"racer{k}", time.time(), 30.0)
                if c is None:
                    time.sleep(0.0005)  # let the holder's thread run
                    continue
                with lock:
                    holding[0] += 1
                    most[0] = max(most[0], holding[0])
                    claims[0] += 1
                time.sleep(0.001)
                with lock:
                    holding[0] -= 1
                assert e.store.release(c, time.time(), "")

        threads = [threading.Thread(target=claimer, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert claims[0] >= 30  # they did race, thirty times
    assert most[0] == 1


def test_of_the_copies_of_a_message_refused_a_slot_only_one_asks_again(store_url: str) -> None:
    """A workflow waiting for a slot gets copies of its step's message (the supervisor's
    resubmissions, the broker's redeliveries). Each copy refused a slot asked again on its
    own, so copies were never dropped while the queue stayed full: only one may."""
    with Engine(store_url) as e:
        e.set_queue(wq.QUEUE, 1)
        first, second = (e.start(wq.queued, n, 1, 0.0) for n in range(2))
        now = time.time()
        assert e.store.claim("holder", now, 30.0, id=first, step=0) is not None
        assert e.store.claim("other", now, 30.0, id=second, step=0) is None  # the queue is full
        assert e.store.slot_retry(second, 0, now, now + 0.1)  # one copy asks again
        copies = [e.store.slot_retry(second, 0, now + 0.05, now + 0.15) for _ in range(5)]
        assert copies == [False] * 5  # the others, before it comes back, are dropped
        assert e.store.slot_retry(second, 0, now + 0.1, now + 0.2)  # it comes back, asks again
        assert not e.store.slot_retry(first, 0, now + 0.3, now + 0.4)  # claimed: no wait
        assert not e.store.slot_retry(second, 1, now + 0.3, now + 0.4)  # not at that step


def _retries_in_flight(queue: str) -> int:
    """Messages of `queue` a Celery worker holds unacknowledged (kombu's ``unacked`` hash):
    those waiting out their countdown, and the one running."""
    import redis

    r = redis.Redis.from_url(REDIS)
    return sum(json.loads(m)[2] == queue for _, m in r.hscan_iter("unacked"))


def test_copies_of_a_message_refused_a_slot_do_not_multiply_on_celery(
    redis_url: str, effects: str, procs: Procs, queue: str
) -> None:
    env = subprocess_env(effects)
    procs.start(["celery-worker", REDIS, "--queue", queue, "--concurrency", "2"], env)
    executor = CeleryExecutor(REDIS, queue=queue)
    with Engine(redis_url, executor, lease=30.0) as e:
        e.set_queue(wq.QUEUE, 1)
        holder = e.start(wq.queued, 0, 1, 4.0)  # holds the queue's slot for 4 s
        wait_for(lambda: any(t == "queued0" for _, t, *_ in wq.spans(effects)), 60, "the holder")
        waiting = e.start(wq.queued, 1, 1, 0.0)
        for _ in range(5):  # as the supervisor's resubmissions would
            executor.submit(redis_url, waiting, 0, 30.0)
        time.sleep(1.0)
        seen = []
        for _ in range(10):
            seen.append(_retries_in_flight(queue))
            time.sleep(0.1)
        # The holder's message, and one retry (two for an instant, as one replaces the other).
        assert max(seen) <= 3, seen
        wait_for(lambda: _all_done(e, [holder, waiting]), 60, "both done")
        assert e.result(waiting) == 1
    executor.close()


def test_a_fork_keeps_its_queue_and_its_time_limit_counted_from_the_fork(
    store_url: str, effects: str, procs: Procs
) -> None:
    with Engine(store_url) as e:
        e.set_queue(wq.QUEUE, 1)
        old = e.start(wq.queued_and_limited, 40, 0.1)  # 4 s of steps, 1.5 s allowed
        procs.start(["worker", store_url], subprocess_env(effects))
        wait_for(lambda: e.status(old) != "running", 30, "the workflow's time limit")
        with pytest.raises(WorkflowTimeoutError):
            e.result(old)
        before = time.time()
        new = e.fork(old, 2)
        row = e.store.get(new)
        assert row is not None and row.queue == wq.QUEUE
        assert before + 1.5 <= row.deadline <= time.time() + 1.5
        wait_for(lambda: e.status(new) != "running", 30, "the fork's time limit")
        with pytest.raises(WorkflowTimeoutError):  # not run to its end, 4 s later
            e.result(new)


def test_a_full_queues_waiting_rows_are_parked_out_of_the_claims_walk_and_come_back_in_order(
    store_url: str,
) -> None:
    """Every claim walked the ready rows of a full queue (21 ms a claim with 10,000 waiting
    on SQLite, 43 ms on Redis, `bench_workflow --claims --full-queue`): they are parked out
    of its way, and taken back in their order as slots come free."""
    from coroutine.workflow._queues import PARK

    with Engine(store_url) as e:
        e.set_queue(wq.QUEUE, 1)
        first = e.start(wq.queued, 0, 1, 0.0)
        held = e.store.claim("holder", time.time(), 30.0)
        assert held is not None and held.id == first
        waiting = [e.start(wq.queued, n, 1, 0.0) for n in range(1, 21)]
        free = e.start(wq.free, 0, 1, 0.0)
        claim = e.store.claim("worker", time.time(), 30.0)
        assert claim is not None and claim.id == free  # past the full queue
        assert all(raw_due(e, i) >= PARK for i in waiting)  # parked by that claim
        assert e.store.release(held, time.time(), "")  # the slot comes free
        taken = []
        for _ in range(3):
            c = e.store.claim("worker", time.time(), 30.0)
            assert c is not None
            taken.append(c.id)
            assert sum(raw_due(e, i) < PARK for i in waiting) <= len(taken)  # one at a time
            assert e.store.release(c, time.time() + 60, "")  # (due later: not taken again)
        assert taken == waiting[:3]  # in the order they were started
