"""A receive or a join that must wait, in a step whose activity failed and was caught: that
activity ran once, however long the wait and whatever worker takes the workflow after it.

The step commits before the workflow waits (its receive or join is answered "ask again",
`_waits.AGAIN`); before, nothing was committed, and the replay after the wake-up ran the
failed activity again. Real workers, on every store and over Celery.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import wf_programs as wp
import wf_wait_programs as ww
from wf_backends import KINDS, Backend, raw_due
from wf_support import Procs, wait_for


@pytest.fixture(params=KINDS)
def backend(request: pytest.FixtureRequest, procs: Procs, effects: str) -> Iterator[Backend]:
    b = Backend(request.param, request, procs, effects)
    yield b
    b.close()


def test_an_activity_failed_before_a_receive_runs_once(backend: Backend, effects: str) -> None:
    e = backend.engine
    wid = e.start(ww.refused_then_receives)
    backend.start()
    asleep = lambda: e.info(wid).owner == "" and raw_due(e, wid) > time.time() + 1e6  # noqa: E731
    wait_for(lambda: bool(wp.effect_counts(effects)) and asleep(), 30, "not waiting")
    e.send(wid, "m", "hello")
    wait_for(lambda: e.status(wid) != "running", 30, "the value was not received")
    assert e.result(wid) == "hello"
    assert wp.effect_counts(effects) == {f"{wid}:0": 1}  # the failed activity ran once


def test_an_activity_failed_before_a_join_runs_once(backend: Backend, effects: str) -> None:
    e = backend.engine
    wid = e.start(ww.refused_then_joins)
    backend.start()
    wait_for(lambda: e.status(wid) != "running", 60, "the child was not joined")
    assert e.result(wid) == "slept"
    assert wp.effect_counts(effects) == {f"{wid}:1": 1}  # the failed activity ran once
