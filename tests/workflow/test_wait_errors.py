"""A wait that cannot be answered for a reason that is not the body's (the store fails while a
message is taken) gives the claim back with the reason and is tried again: the workflow is
not failed for good by a passing store error."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import pytest
import wf_wait_programs as ww

from coroutine.workflow import Engine


def test_a_store_error_while_receiving_is_retried_not_fatal(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Engine(sqlite_url) as e:
        wid = e.start(ww.collect, 1)
        e.send(wid, "m", "hello")
        take = type(e.store).take
        failures = []

        def flaky(self: Any, claim: Any, topic: str) -> Any:
            if not failures:  # the first time only: a passing error, as "database is locked"
                failures.append(claim.step)
                raise sqlite3.OperationalError("database is locked")
            return take(self, claim, topic)

        monkeypatch.setattr(type(e.store), "take", flaky)
        monkeypatch.setattr("coroutine.workflow._runner.RETRY_LOAD", 0.1)
        e.run()
        info = e.info(wid)
        assert failures == [0]
        assert info.status == "running", info.error  # not failed for good
        assert "database is locked" in info.last_error
        deadline = time.monotonic() + 10
        while e.status(wid) == "running" and time.monotonic() < deadline:
            time.sleep(0.05)
            e.run()
        assert e.result(wid) == ["hello"]


def test_a_child_runs_under_its_own_time_limit(sqlite_url: str) -> None:
    # The child's @workflow(timeout=) holds when a parent starts it, as when started alone.
    with Engine(sqlite_url) as e:
        wid = e.start(ww.parent_of_late, 3)
        deadline = time.monotonic() + 20
        while e.status(wid) == "running" and time.monotonic() < deadline:
            e.run()
            time.sleep(0.02)
        assert e.result(wid) == "WorkflowTimeoutError"
