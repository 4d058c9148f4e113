"""Durable timers (`sleep`): no worker or lease held while one runs, nothing lost when the
worker is SIGKILLed during it, and never answered early, on every store and over Celery."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import wf_programs as wp
import wf_wait_programs as ww
from wf_backends import KINDS, Backend, raw_due
from wf_support import Procs, wait_for

NAP = 1.5  # seconds


@pytest.fixture(params=KINDS)
def backend(request: pytest.FixtureRequest, procs: Procs, effects: str) -> Iterator[Backend]:
    b = Backend(request.param, request, procs, effects)
    yield b
    b.close()


def test_a_sleep_holds_no_worker_survives_a_sigkill_and_never_ends_early(
    backend: Backend,
) -> None:
    e = backend.engine
    worker = backend.start()
    nap = e.start(ww.napper, NAP)

    # Step 0 is `clock`, step 1 records the deadline; at step 2 the timer waits.
    def waiting() -> bool:  # (over Celery, step 2's message may not be taken yet)
        steps = e.steps(nap)
        return len(steps) == 2 and raw_due(e, nap) == steps[1].result

    wait_for(waiting, 30, "the row is not due when the timer ends")
    deadline = e.steps(nap)[1].result
    assert e.info(nap).owner == ""  # no lease, no worker
    # The one worker is free: another workflow runs to its end during the sleep.
    other = e.start(wp.chain, 3)
    wait_for(lambda: e.status(other) == "done", 30, "the worker was held by the timer")
    assert time.time() < deadline, "the test's sleep is too short for this machine"
    assert e.info(nap).step == 2
    backend.kill(worker)
    backend.start()  # at once: it must still wait for the deadline
    wait_for(lambda: e.status(nap) != "running", 30, "the timer never ended")
    before, after = e.result(nap)
    assert after >= deadline >= before + NAP
    assert [s.activity for s in e.steps(nap)] == [
        "wf_wait_programs:clock",
        "coroutine.workflow:deadline",
        "coroutine.workflow:sleep",
        "wf_wait_programs:clock",
    ]


def test_a_sleeping_workflow_can_be_cancelled_and_is_not_run_again(store_url: str) -> None:
    from coroutine.workflow import Engine, WorkflowCancelledError

    with Engine(store_url) as e:
        nap = e.start(ww.napper, 100.0)
        e.run()  # clock, deadline; then the timer gives the workflow back
        assert (e.info(nap).step, e.info(nap).owner) == (2, "")
        assert e.cancel(nap)
        assert e.run() == 0
        with pytest.raises(WorkflowCancelledError):
            e.result(nap)
