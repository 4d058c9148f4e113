"""Child workflows (`start_child`, `join`) with real workers on every store and over Celery:
each child started once though the parent's worker is SIGKILLed right after starting them,
the parent waiting without a worker, a child's failure raised at `join`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import wf_wait_programs as ww
from wf_backends import KINDS, Backend
from wf_support import Procs, wait_for

N = 3


@pytest.fixture(params=KINDS)
def backend(request: pytest.FixtureRequest, procs: Procs, effects: str) -> Iterator[Backend]:
    b = Backend(request.param, request, procs, effects)
    yield b
    b.close()


def test_children_start_once_across_a_crash_and_their_failure_is_raised_at_join(
    backend: Backend,
) -> None:
    e = backend.engine
    parent = e.start(ww.parent, N)
    children = [f"{parent}~{i}" for i in range(N + 1)]  # the last one fails
    worker = backend.start()
    wait_for(lambda: e.store.get(children[0]) is not None, 30, "no child started")
    backend.kill(worker)  # right after its first child, before or after the others
    worker = backend.start()
    wait_for(lambda: e.status(parent) != "running", 60, "the parent never ended")
    assert e.result(parent) == ww.expected_parent(N)
    ids = [w.id for w in e.list()]
    assert sorted(ids) == sorted([parent, *children])  # each child once
    assert [e.status(c) for c in children] == ["done"] * N + ["failed"]
    joins = [s for s in e.steps(parent) if s.activity == "coroutine.workflow:join"]
    assert [s.args for s in joins] == [(c,) for c in children]


def test_a_joining_parent_holds_no_worker(backend: Backend) -> None:
    e = backend.engine
    parent = e.start(ww.parent, 1)
    backend.start()
    # With one worker, the parent waits at its first join while its children run.
    wait_for(lambda: e.status(parent) != "running", 60, "the parent never ended")
    child = f"{parent}~0"
    assert e.info(child).updated <= e.steps(parent)[2].finished
    assert e.result(parent) == ww.expected_parent(1)
