"""Starting a workflow: one per id, every argument checked first, nothing saved on failure."""

from __future__ import annotations

import time

import pytest
import wf_programs as wp

from coroutine.workflow import CeleryExecutor, Engine, WorkflowConflictError


@pytest.fixture(autouse=True)
def calls() -> None:
    wp.CALLS.clear()


def test_start_makes_a_new_workflow_each_time(sqlite_url: str) -> None:
    with Engine(sqlite_url) as e:
        assert e.start(wp.doubles, 1) != e.start(wp.doubles, 1)
        assert len(e.list()) == 2


def test_start_as_starts_at_most_one_workflow_per_id(store_url: str) -> None:
    with Engine(store_url) as e:
        assert e.start_as("order-1", wp.doubles, 3) == "order-1"
        assert e.start_as("order-1", wp.doubles, 3) == "order-1"  # a retry: nothing new
        assert e.start_as("order-1", wp.doubles, n=3) == "order-1"  # the same call, bound
        assert [r.id for r in e.list()] == ["order-1"]
        assert e.run() == 4
        assert e.start_as("order-1", wp.doubles, 3) == "order-1"  # also once it is done
        assert e.result("order-1") == 6
    assert [c[1] for c in wp.CALLS] == [0, 1, 2]


@pytest.mark.parametrize(
    ("fn", "args", "existing"),
    [(wp.doubles, (4,), "wf_programs:doubles(3)"), (wp.small, (3,), "wf_programs:doubles(3)")],
)
def test_start_as_with_another_call_is_a_conflict(
    sqlite_url: str, fn: object, args: tuple[int], existing: str
) -> None:
    with Engine(sqlite_url) as e:
        e.start_as("order-1", wp.doubles, 3)
        with pytest.raises(WorkflowConflictError, match="'order-1' is taken by") as info:
            e.start_as("order-1", fn, *args)  # type: ignore[arg-type]
        assert info.value.existing == existing
        assert [(r.id, r.args) for r in e.list()] == [("order-1", (3,))]


@pytest.mark.parametrize("bad", ["", 7, "x" * 201])
def test_start_as_refuses_an_id_that_is_not_a_short_str(sqlite_url: str, bad: object) -> None:
    with Engine(sqlite_url) as e:
        with pytest.raises(TypeError, match="workflow id is a non-empty str"):
            e.start_as(bad, wp.doubles, 1)  # type: ignore[arg-type]
        assert e.list() == []


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda e: e.start(wp.doubles, 1, id="order-1"), "unexpected keyword argument 'id'.*"
         r"to choose its id, use Engine.start_as\(id, fn, ...\)"),
        (lambda e: e.start(wp.doubles), "missing a required argument: 'n'"),
        (lambda e: e.start(wp.doubles, 1, 2), "too many positional arguments"),
        (lambda e: e.start(wp.double, 1), r"wf_programs:double is an @activity, a step of a "
         r"workflow, not a workflow; start a function that calls it \(def flow"),
        (lambda e: e.start(lambda: None), "module-level function"),
        (lambda e: e.start(wp.returns_at_once, object()), "got <object object"),
    ],
)  # fmt: skip
def test_start_checks_everything_before_saving_anything(
    sqlite_url: str, call: object, message: str
) -> None:
    with Engine(sqlite_url) as e:
        with pytest.raises(TypeError, match=message):
            call(e)  # type: ignore[operator]
        assert e.list() == []


def test_start_with_the_broker_down_leaves_nothing_saved(sqlite_url: str) -> None:
    executor = CeleryExecutor("redis://127.0.0.1:1/0")  # nothing listens on port 1
    executor.app.conf.broker_connection_max_retries = 1
    with Engine(sqlite_url, executor) as e:
        t = time.monotonic()
        with pytest.raises(Exception, match=r"(?i)connect|refused"):
            e.start(wp.doubles, 2)
        with pytest.raises(Exception, match=r"(?i)connect|refused"):
            e.start_as("order-1", wp.doubles, 2)
        assert time.monotonic() - t < 30
        assert e.list() == []  # a retry starts afresh: no orphan, no duplicate
    executor.close()


def test_an_activity_argument_that_cannot_be_recorded_fails_before_the_activity_runs(
    store_url: str,
) -> None:
    with Engine(store_url) as e:
        i = e.start(wp.echo_arg, 1)
        e.run()
        assert e.result(i) == 1
        j = e.start_as("obj", wp.echo_arg, [1, {2: (3,)}])
        e.run()
        assert e.result(j) == [1, {2: (3,)}]
        wp.CALLS.clear()
        assert e.status(e.start(wp.uses_an_object)) == "running"
        e.run()
        failed = [r for r in e.list() if r.status == "failed"]
        assert len(failed) == 1
        assert "an argument of activity wf_programs:echo cannot be recorded" in failed[0].error
        assert "coroutine.types.Register" in failed[0].error
    assert wp.CALLS == []  # the activity never ran


def test_an_activity_result_that_cannot_be_recorded_is_a_type_error_at_the_call(
    store_url: str,
) -> None:
    with Engine(store_url, sticky=False) as e:
        i = e.start(wp.unrecordable_result)
        e.run()
        assert e.result(i).startswith(
            "refused: the result of activity wf_programs:make_obj cannot be recorded"
        )
