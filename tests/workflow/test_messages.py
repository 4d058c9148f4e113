"""Messages (`Engine.send`, `receive`) and events (`set_event`, `Engine.get_event`), with
real workers on every store and over Celery: values sent before, during and after a SIGKILL
arrive once each and in order; a receive's time limit is kept across a crash; no worker or
lease is held while a workflow waits."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import wf_programs as wp
import wf_wait_programs as ww
from wf_backends import KINDS, Backend, raw_due, raw_waiting
from wf_support import Procs, wait_for

from coroutine.workflow import WorkflowNotFoundError


@pytest.fixture(params=KINDS)
def backend(request: pytest.FixtureRequest, procs: Procs, effects: str) -> Iterator[Backend]:
    b = Backend(request.param, request, procs, effects)
    yield b
    b.close()


def _applied(effects: str) -> int:
    return sum(wp.effect_counts(effects).values())


def test_values_sent_before_during_and_after_a_crash_arrive_once_in_order(
    backend: Backend, effects: str
) -> None:
    e = backend.engine
    box = e.start(ww.inbox, 8)
    e.send(box, "m", 0)  # before any worker runs it
    e.send(box, "m", 1)
    e.send(box, "other", "not for this topic")
    worker = backend.start()
    wait_for(lambda: _applied(effects) >= 2, 30, "the first values were not received")
    # At step 4 it waits for a value, free (no lease): due only once a value comes.
    waiting = lambda: e.info(box).step == 4 and e.info(box).owner == ""  # noqa: E731
    wait_for(lambda: waiting() and raw_due(e, box) > time.time() + 1e6, 30, "not waiting")
    e.send(box, "m", 2)
    e.send(box, "m", 3)
    backend.kill(worker)  # while it receives 2 and 3, or right after
    e.send(box, "m", 4)  # no worker up
    worker = backend.start()
    e.send(box, "m", 5)
    wait_for(lambda: _applied(effects) >= 6, 30, "the values sent around the crash")
    for v in (6, 7):
        e.send(box, "m", v)
    wait_for(lambda: e.status(box) != "running", 30, "not all values received")
    assert e.result(box) == list(range(8))
    assert e.get_event(box, "count") == 8
    counts = wp.effect_counts(effects)  # one effect per value received (at least once)
    assert sorted(int(k.split(":")[1]) for k in counts) == [1, 3, 5, 7, 9, 11, 13, 15]
    assert sum(counts.values()) - 8 <= 1  # the one killed step may have run twice


def test_a_receive_times_out_at_its_deadline_also_across_a_crash(backend: Backend) -> None:
    e = backend.engine
    late = e.start(ww.patient, 2.0)
    prompt = e.start(ww.patient, 30.0)
    worker = backend.start()
    assert e.get_event(late, "stage", timeout=30) == "waiting"
    assert e.get_event(prompt, "stage", timeout=30) == "waiting"
    e.send(prompt, "x", "here")
    deadline = e.steps(late)[1].result  # recorded once, when the receive started
    wait_for(lambda: e.info(late).owner == "" and e.info(late).step == 2, 30, "no wait")
    backend.kill(worker)
    backend.start()
    wait_for(lambda: e.status(late) != "running", 30, "the receive never timed out")
    assert e.result(late) == "timed out"
    assert e.steps(late)[2].finished >= deadline
    wait_for(lambda: e.status(prompt) != "running", 30, "the value never arrived")
    assert e.result(prompt) == "here"


def test_get_event_and_send_say_what_is_missing(sqlite_url: str) -> None:
    from coroutine.workflow import Engine

    with Engine(sqlite_url) as e:
        box = e.start(ww.inbox, 1)
        t0 = time.monotonic()
        with pytest.raises(TimeoutError, match=r"set no event 'count' in 0\.2 s"):
            e.get_event(box, "count", timeout=0.2)
        assert time.monotonic() - t0 >= 0.2
        with pytest.raises(WorkflowNotFoundError):
            e.send("nope", "m", 1)
        with pytest.raises(TypeError, match=r"must be None, bool"):
            e.send(box, "m", object())


def test_what_a_workflow_waited_for_is_forgotten_when_it_ends(backend: Backend) -> None:
    """Without a supervisor (plain workers) nothing else removes it: a row per workflow
    that ever waited stayed in the store for good."""
    e = backend.engine
    done, cancelled = e.start(ww.collect, 1), e.start(ww.collect, 1)
    backend.start()
    waiting = lambda i: e.info(i).owner == "" and raw_due(e, i) > time.time() + 1e6  # noqa: E731
    wait_for(lambda: waiting(done) and waiting(cancelled), 30, "not waiting")
    assert backend.kind == "celery" or raw_waiting(e, done)  # (a supervisor's is woken)
    e.send(done, "m", 1)
    e.cancel(cancelled)
    wait_for(lambda: e.status(done) == "done", 30, "the value was not received")
    assert not raw_waiting(e, done) and not raw_waiting(e, cancelled)


def test_a_workflow_waiting_for_a_value_across_a_deploy_takes_the_new_code_after_its_wait(
    backend: Backend,
) -> None:
    """Every worker SIGKILLed while it waits, the new code deployed (`Patched` guards its
    changes), the value sent: the change before the wait keeps the recorded branch, the one
    after it runs new."""
    e = backend.engine
    wid = e.start(ww.deployed_waiter)
    worker = backend.start()
    waiting = lambda: e.info(wid).owner == "" and raw_due(e, wid) > time.time() + 1e6  # noqa: E731
    wait_for(waiting, 30, "not waiting")
    backend.kill(worker)
    backend.env["WF_NEW_CODE"] = "1"  # the deploy
    backend.start()
    e.send(wid, "m", 5)
    wait_for(lambda: e.status(wid) != "running", 30, "the value was not received")
    assert e.result(wid) == [2, 4, 15]
