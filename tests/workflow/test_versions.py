"""Deployed changes: a versioned workflow resumes under new code; `Patched` keeps old
histories replaying as they were recorded; an unguarded change fails the old workflows."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import wf_programs as wp

from coroutine import InvalidStateError
from coroutine.workflow import Engine, workflow


@pytest.fixture(autouse=True)
def old_code() -> Iterator[None]:
    wp.CALLS.clear()
    wp.NEW_CODE = False
    yield
    wp.NEW_CODE = False


def _one_step(url: str, fn: object) -> str:
    """Start a workflow and run its first step under the old code; then forget it."""
    with Engine(url, sticky=False) as e:
        i = e.start(fn)  # type: ignore[arg-type]
        claim = e.store.claim(e.runner.worker, time.time(), 30.0)
        after = e.runner.step(claim) if claim is not None else None
        assert after is not None and after.step == 1
    return i


def test_patched_keeps_an_old_history_on_the_old_branch_and_new_runs_on_the_new(
    sqlite_url: str,
) -> None:
    old = _one_step(sqlite_url, wp.patched_flow)
    wp.NEW_CODE = True  # the deploy
    with Engine(sqlite_url, sticky=False) as e:
        new = e.start(wp.patched_flow)
        e.run()
        assert e.result(old) == [2, 4]  # recorded before the patch: double first
        assert e.result(new) == [3, 6]  # started after it: the new branch


def test_an_unguarded_change_fails_the_workflows_in_flight(sqlite_url: str) -> None:
    old = _one_step(sqlite_url, wp.unguarded_flow)
    wp.NEW_CODE = True
    with Engine(sqlite_url, sticky=False) as e:
        e.run()
        assert e.status(old) == "failed"
        with pytest.raises(InvalidStateError):
            e.result(old)


def test_a_changed_version_string_does_not_resume_old_states(sqlite_url: str) -> None:
    old = _one_step(sqlite_url, wp.patched_flow)
    try:
        workflow(version="orders-2")(wp.patched_flow)
        with Engine(sqlite_url) as e:
            e.run()
            assert e.status(old) == "failed"
            with pytest.raises(InvalidStateError, match="version"):
                e.result(old)
    finally:
        workflow(version="orders-1")(wp.patched_flow)


def test_workflow_version_must_be_a_string() -> None:
    with pytest.raises(TypeError, match="non-empty str"):
        workflow(version="")
