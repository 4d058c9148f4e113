"""The engine on each store: steps recorded once, retries, failures, leases, stickiness."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
import wf_programs as wp

from coroutine import InvalidStateError, YieldTypeError
from coroutine.workflow import (
    Engine,
    NotInActivityError,
    WorkflowCancelledError,
    WorkflowFailedError,
    WorkflowNotDoneError,
    WorkflowNotFoundError,
    idempotency_key,
)
from coroutine.workflow._store import Commit, chain


@pytest.fixture(autouse=True)
def calls() -> None:
    wp.CALLS.clear()


def test_workflow_runs_to_its_result_on_every_store(store_url: str) -> None:
    with Engine(store_url) as e:
        i = e.start(wp.doubles, 5)
        assert e.status(i) == "running"
        assert e.run() == 6
        assert e.status(i) == "done"
        assert e.result(i) == 20
    assert [c[1] for c in wp.CALLS] == [0, 1, 2, 3, 4]


def test_each_step_has_its_own_idempotency_key(store_url: str) -> None:
    with Engine(store_url) as e:
        i = e.start(wp.doubles, 3)
        e.run()
    assert [c[2] for c in wp.CALLS] == [f"{i}:0", f"{i}:1", f"{i}:2"]


@pytest.mark.parametrize("sticky", [True, False])
def test_replay_returns_recorded_results_without_running_activities_again(
    store_url: str, sticky: bool
) -> None:
    with Engine(store_url, sticky=sticky) as e:
        i = e.start(wp.doubles, 4)
        e.run()
        assert e.result(i) == 12
        hits, replays = e.runner.hits, e.runner.replays
    assert len(wp.CALLS) == 4  # each activity once, though non-sticky steps replay the body
    assert (hits, replays) == ((4, 1) if sticky else (0, 5))


def test_activity_outside_a_workflow_is_a_plain_call() -> None:
    assert wp.triple(3) == 9
    assert wp.CALLS == [("triple", 3)]
    with pytest.raises(NotInActivityError, match="only known inside an activity"):
        wp.double(3)  # a plain call: the engine gives no key


def test_idempotency_key_outside_an_activity_raises() -> None:
    with pytest.raises(NotInActivityError, match="idempotency_key"):
        idempotency_key()


def test_failing_activity_is_retried_with_the_same_key(sqlite_url: str) -> None:
    with Engine(sqlite_url) as e:
        i = e.start(wp.with_retry, 2)
        t = time.monotonic()
        e.run()
        elapsed = time.monotonic() - t
        assert e.result(i) == "ok 101"
    assert [c[2] for c in wp.CALLS] == [f"{i}:0"] * 3
    assert elapsed >= 0.01 + 0.02  # backoff 0.01, then twice that


def test_activity_failing_every_attempt_is_thrown_into_the_body(store_url: str) -> None:
    with Engine(store_url) as e:
        i = e.start(wp.with_retry, 3)
        e.run()
        assert e.result(i) == "caught declined 1: 10"
        assert [c[0] for c in wp.CALLS] == ["flaky"] * 3 + ["double"]
        assert wp.CALLS[-1][2] == f"{i}:1"  # the compensation is the next step


def test_uncaught_activity_failure_fails_the_workflow(store_url: str) -> None:
    with Engine(store_url) as e:
        i = e.start(wp.uncaught)
        e.run()
        assert e.status(i) == "failed"
        with pytest.raises(wp.Declined, match="declined 2"):
            e.result(i)


def test_result_of_an_exception_class_not_loaded_is_workflow_failed_error(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Engine(sqlite_url) as e:
        i = e.start(wp.raises_unloaded)
        e.run()
        monkeypatch.delattr(wp, "Unloaded")
        with pytest.raises(WorkflowFailedError, match=r"wf_programs\.Unloaded: gone") as info:
            e.result(i)
        assert "raise Unloaded" in info.value.remote_traceback


def test_result_before_done_and_unknown_ids_raise(sqlite_url: str) -> None:
    with Engine(sqlite_url) as e:
        i = e.start(wp.doubles, 1)
        with pytest.raises(WorkflowNotDoneError, match="still running"):
            e.result(i)
        for op in (e.status, e.result, e.cancel):
            with pytest.raises(WorkflowNotFoundError, match="no workflow 'nope'"):
                op("nope")


def test_cancel_stops_a_running_workflow(store_url: str) -> None:
    with Engine(store_url) as e:
        i = e.start(wp.doubles, 3)
        done = e.start(wp.returns_at_once, 1)
        e.run()
        j = e.start(wp.doubles, 3)
        assert e.cancel(j) is True
        assert e.cancel(j) is False and e.cancel(done) is False
        assert e.run() == 0
        assert e.status(j) == "failed"
        with pytest.raises(WorkflowCancelledError):
            e.result(j)
        assert [r.id for r in e.list()] == [i, done, j]
        assert [r.status for r in e.list()] == ["done", "done", "failed"]


def test_keyword_arguments_and_tuples_survive_the_store(store_url: str) -> None:
    with Engine(store_url, sticky=False) as e:
        i = e.start(wp.no_args_kw, a=2, b=(1, 2))
        e.run()
        assert e.result(i) == [2, (1, 2), 4]


def test_start_refuses_what_cannot_be_recorded(sqlite_url: str) -> None:
    with Engine(sqlite_url) as e:
        with pytest.raises(TypeError, match="module-level function"):
            e.start(lambda: None)
        with pytest.raises(TypeError, match="got <object object"):
            e.start(wp.returns_at_once, object())


def test_a_stale_commit_is_rejected(store_url: str) -> None:
    """The compare-and-set: a second commit of the same step (a duplicate) applies nothing."""
    with Engine(store_url) as e:
        i = e.start(wp.doubles, 3)
        claim = e.store.claim("w1", time.time(), 30.0)
        assert claim is not None and claim.step == 0
        after = e.runner.step(claim)
        assert after is not None and after.step == 1
        late = Commit(claim, 1, "running", b"junk", b"")
        assert e.store.commit(late, time.time()) is False
        assert e.store.get(i).step == 1  # type: ignore[union-attr]
        e.run()
        assert e.result(i) == 6
    assert len(wp.CALLS) == 3


def test_a_live_lease_blocks_other_workers_until_it_expires(store_url: str) -> None:
    with Engine(store_url) as e:
        i = e.start(wp.doubles, 2)
        now = time.time()
        assert e.store.claim("w1", now, 30.0) is not None
        assert e.store.claim("w2", now + 29.0, 30.0) is None
        assert e.store.claim("w2", now, 30.0, id=i, step=0) is None
        taken = e.store.claim("w2", now + 31.0, 30.0)
        assert taken is not None and taken.id == i
        assert e.store.claim("w3", now + 31.0, 30.0, id=i, step=1) is None  # wrong step


def test_sticky_cache_is_bounded(sqlite_url: str) -> None:
    with Engine(sqlite_url, cache_size=2, batch=1) as e:
        ids = [e.start(wp.doubles, 3) for _ in range(4)]
        e.run()
        assert [e.result(i) for i in ids] == [6] * 4
        assert len(e.runner._cache) == 0  # all done: nothing left to keep
        assert e.runner.replays > 4  # round-robin over 4 workflows with room for 2


def test_worker_command_runs_workflows_until_idle(sqlite_url: str) -> None:
    with Engine(sqlite_url) as e:
        ids = [e.start(wp.doubles, 3) for _ in range(3)]
    from wf_support import subprocess_env

    out = subprocess.run(
        [sys.executable, "-m", "coroutine.workflow", "worker", sqlite_url, "--until-idle"],
        env=subprocess_env(),
        capture_output=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr.decode()
    with Engine(sqlite_url) as e:
        assert [e.result(i) for i in ids] == [6, 6, 6]


def test_importing_workflow_imports_no_optional_dependency() -> None:
    code = (
        "import sys, tempfile, coroutine.workflow as w;"
        "w.Engine('sqlite:///' + tempfile.mkdtemp() + '/x.db');"
        "print(sorted(m for m in ('celery', 'redis', 'psycopg', 'kombu') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_worker_whose_live_copy_is_behind_the_store_replays(store_url: str) -> None:
    """Sticky only when the cached step is the stored one: else the cache is stale."""
    with Engine(store_url) as a, Engine(store_url) as b:
        i = a.start(wp.doubles, 4)
        for engine, step in ((a, 0), (b, 1), (a, 2), (b, 3)):
            claim = engine.store.claim(engine.runner.worker, time.time(), 30.0)
            assert claim is not None and claim.step == step
            engine.runner.step(claim)
        assert a.run() == 1  # the final step: it returns
        assert a.result(i) == 12
        assert (a.runner.hits, a.runner.replays) == (0, 3)
    assert [c[1] for c in wp.CALLS] == [0, 1, 2, 3]


def test_a_workflow_this_worker_cannot_rebuild_fails_with_the_reason(sqlite_url: str) -> None:
    with Engine(sqlite_url) as e:
        i = e.start(wp.doubles, 2)
        db = e.store._db  # type: ignore[attr-defined]
        db.execute("UPDATE cw_states SET blob = ?", (b"not a state",))
        db.execute("UPDATE cw_workflows SET chain = ?", (chain(b"", b"not a state"),))
        e.run()
        assert e.status(i) == "failed"
        with pytest.raises(InvalidStateError):
            e.result(i)


@pytest.mark.parametrize("sticky", [True, False])
def test_each_step_appends_a_delta_instead_of_rewriting_the_state(
    sqlite_url: str, sticky: bool
) -> None:
    with Engine(sqlite_url, sticky=sticky) as e:
        i = e.start(wp.doubles, 60)
        e.run()
        assert e.result(i) == 2 * sum(range(60))
        blobs = [b for (b,) in e.store._db.execute("SELECT blob FROM cw_states ORDER BY seq")]  # type: ignore[attr-defined]
    assert len(blobs) == 1 + 61  # the full state at start, then one delta per step
    assert max(len(b) for b in blobs[1:]) < 200  # one step's record, not the history


def test_a_workflow_whose_code_a_worker_lacks_says_why_and_is_retried(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with Engine(sqlite_url, lease=0.3) as e:
        i = e.start(wp.doubles, 2)
        db = e.store._db  # type: ignore[attr-defined]
        db.execute("UPDATE cw_workflows SET entry = 'wf_no_such_module:doubles'")
        assert e.run() == 1
        info = e.info(i)
        assert (info.status, info.step) == ("running", 0)
        assert "cannot resume it: ModuleNotFoundError: No module named 'wf_no_such_module'" in (
            info.last_error
        )
        with pytest.raises(WorkflowNotDoneError, match=r"workers report: worker .* cannot resume"):
            e.result(i)
        assert [r.levelname for r in caplog.records if "cannot resume" in r.getMessage()] == [
            "ERROR"
        ]
        db.execute("UPDATE cw_workflows SET entry = 'wf_programs:doubles'")
        assert e.run() == 0  # given back, due again after a while
        time.sleep(0.35)
        e.run()
        assert e.result(i) == 2
        assert e.info(i).last_error == ""  # cleared by the next step


def test_a_body_that_yields_by_itself_fails_with_yield_type_error(sqlite_url: str) -> None:
    with Engine(sqlite_url) as e:
        i = e.start(wp.yields_itself)
        e.run()
        with pytest.raises(YieldTypeError, match="ActivityCall"):
            e.result(i)


def test_a_step_in_flight_when_cancelled_commits_nothing(store_url: str) -> None:
    with Engine(store_url) as e:
        i = e.start(wp.doubles, 3)
        claim = e.store.claim("w1", time.time(), 30.0)
        assert claim is not None
        assert e.cancel(i) is True
        assert e.runner.step(claim) is None  # its activity ran; its commit is refused
        row = e.store.get(i)
        assert row is not None and (row.status, row.step) == ("failed", 0)
        with pytest.raises(WorkflowCancelledError):
            e.result(i)


def test_an_activity_longer_than_the_lease_keeps_its_lease(store_url: str) -> None:
    """The heartbeat renews the lease while the activity runs: no other worker takes it."""
    taken: list[object] = []

    def other_worker() -> None:  # its own connection: a SQLite one belongs to its thread
        with Engine(store_url, lease=0.4) as other:
            time.sleep(0.2)
            for _ in range(10):  # across 3 leases' time
                taken.append(other.store.claim("w2", time.time(), 0.4))
                time.sleep(0.1)

    with Engine(store_url, lease=0.4) as e:
        i = e.start(wp.one_slow_step, 1.5)
        probe = threading.Thread(target=other_worker)
        probe.start()
        e.run()
        probe.join()
        assert e.result(i) == "slept"
    assert taken == [None] * 10
    assert [c[0] for c in wp.CALLS] == ["slow"]
