"""What crosses between activities and a workflow body is the same on every worker: an
exception a replay cannot rebuild arrives as the same `ActivityError`, sticky or replaying."""

from __future__ import annotations

import subprocess
import sys

import pytest
import wf_programs as wp
from wf_support import subprocess_env

from coroutine.workflow import ActivityError, Engine


@pytest.fixture(autouse=True)
def calls() -> None:
    wp.CALLS.clear()


EXPECTED = "caught wf_programs.NeedsKw: code 7; traceback has raise_kw: True"


@pytest.mark.parametrize("sticky", [True, False])
def test_an_exception_that_does_not_rebuild_arrives_as_the_same_stand_in(
    store_url: str, sticky: bool
) -> None:
    with Engine(store_url, sticky=sticky) as e:
        i = e.start(wp.catch_kw)
        e.run()
        assert e.result(i) == EXPECTED
        j = e.start(wp.catch_kw_by_class)
        e.run()
        with pytest.raises(ActivityError, match=r"^wf_programs\.NeedsKw: code 7$") as info:
            e.result(j)
        assert info.value.type_name == "wf_programs.NeedsKw"
        assert "raise NeedsKw(code=7)" in info.value.remote_traceback
    assert [c[0] for c in wp.CALLS] == ["raise_kw", "echo", "raise_kw"]


def test_a_replaying_worker_process_agrees_with_the_sticky_one(sqlite_url: str) -> None:
    """The review's case: done on a sticky worker, 'replay diverged' under --no-sticky."""
    with Engine(sqlite_url) as e:
        i = e.start(wp.catch_kw)
    out = subprocess.run(
        [sys.executable, "-m", "coroutine.workflow", "worker", sqlite_url, "--no-sticky",
         "--until-idle"],
        env=subprocess_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    with Engine(sqlite_url) as e:
        assert e.result(i) == EXPECTED


def test_an_exception_that_rebuilds_is_thrown_in_as_itself(store_url: str) -> None:
    with Engine(store_url, sticky=False) as e:
        i = e.start(wp.with_retry, 3)
        e.run()
        assert e.result(i) == "caught declined 1: 10"


def test_activity_error_itself_rebuilds_exactly() -> None:
    from coroutine.workflow._boundary import stand_in

    err = ActivityError("m.T", "boom", "Traceback ...")
    assert stand_in(err) is err
    assert (err.type_name, err.message, err.remote_traceback, str(err)) == (
        "m.T", "boom", "Traceback ...", "m.T: boom"
    )  # fmt: skip
