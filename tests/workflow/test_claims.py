"""Claims at the store contract, on every store: fenced, freed when their worker is gone,
and found through an index whatever the queue's length."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import wf_programs as wp
from wf_support import subprocess_env

from coroutine.workflow import Engine
from coroutine.workflow._store import Commit, chain


def test_a_stale_claim_commits_nothing_and_its_renewal_is_refused(store_url: str) -> None:
    """The review's repro: A stalls past its lease, B takes the step, A wakes up."""
    with Engine(store_url, lease=1.0) as e:
        wid = e.start(wp.small, 3)
        s, t = e.store, time.time()
        a = s.claim("A", t, 1.0)
        b = s.claim("B", t + 2, 1.0)
        assert a is not None and b is not None and (a.id, b.id) == (wid, wid)
        assert (a.owner, b.owner, b.fence) == ("A", "B", a.fence + 1)
        late = Commit(a, 1, "running", b"x", chain(a.chain, b"x"), keep_until=t + 3.5)
        assert s.commit(late, t + 2.5) is False
        assert s.renew(a, t + 4) is False
        assert s.release(a, t + 4, "") is False
        info = e.info(wid)
        assert (info.step, info.owner) == (0, "B")
        assert s.claim("C", t + 2.6, 1.0) is None  # B's lease holds
        assert s.renew(b, t + 10) is True
        assert s.claim("C", t + 5, 1.0) is None  # renewed
        ok = Commit(b, 1, "running", b"x", chain(b.chain, b"x"))
        assert s.commit(ok, t + 5) is True
        assert s.commit(ok, t + 5) is False  # released: the claim is no longer current


def test_a_cancel_or_a_release_ends_a_claim(store_url: str) -> None:
    with Engine(store_url) as e:
        wid = e.start(wp.small, 3)
        s, t = e.store, time.time()
        a = s.claim("A", t, 30.0)
        assert a is not None and s.release(a, t, "why") is True
        assert e.info(wid).last_error == "why"
        b = s.claim("B", t, 30.0)
        assert b is not None and b.fence == a.fence + 1
        assert e.cancel(wid) is True
        assert s.renew(b, t + 60) is False
        assert s.claim("C", t + 100, 30.0) is None


def test_claims_of_a_dead_worker_process_are_freed_at_once(store_url: str) -> None:
    """A process that joined, claimed and was killed: its claim is free long before its lease
    (on Redis, once its liveness key lapses, a second)."""
    with Engine(store_url) as e:
        wid = e.start(wp.small, 3)
        code = (
            "import sys, time; from coroutine.workflow import Engine\n"
            "e = Engine(sys.argv[1]); e.keeper.start()\n"
            "assert e.store.claim(e.owner, time.time(), 30.0) is not None\n"
            "print('claimed', flush=True); time.sleep(60)\n"
        )
        p = subprocess.Popen(
            [sys.executable, "-c", code, store_url],
            stdout=subprocess.PIPE,
            env=subprocess_env(),
        )
        assert p.stdout is not None and p.stdout.readline() == b"claimed\n"
        assert e.info(wid).owner
        assert e.store.claim("me", time.time(), 30.0) is None  # alive: its lease holds
        p.kill()
        p.wait()
        killed = time.monotonic()
        while e.store.reap(time.time()) == 0:
            assert time.monotonic() - killed < 3, "the dead worker's claim is never freed"
            time.sleep(0.05)
        again = e.store.claim("me", time.time(), 30.0)
        assert again is not None and again.id == wid


def test_the_sqlite_claim_reads_an_index_in_order_not_a_sort(sqlite_url: str) -> None:
    """Claiming costs the same with a thousand or a million queued: no sort of the ready rows
    (the review measured 'USE TEMP B-TREE FOR ORDER BY': 10 ms at 100,000 queued)."""
    with Engine(sqlite_url) as e:
        for n in range(50):
            e.start(wp.small, n)
        store = e.store
        sql = store._q["claim_next"]  # type: ignore[attr-defined]
        plan = store._db.execute(f"EXPLAIN QUERY PLAN {sql}", ("w", 1.0, 2.0, 2.0)).fetchall()  # type: ignore[attr-defined]
        text = " | ".join(str(r[-1]) for r in plan)
        assert "USING INDEX cw_due" in text and "TEMP B-TREE" not in text, text


def test_the_sqlite_claim_counts_each_full_queue_once_not_once_per_row(sqlite_url: str) -> None:
    """A claim passes over the ready rows of a full queue. It counted the queue's claimed
    rows again for each of them, through every row of the queue: quadratic in the rows
    waiting (929 ms a claim with 1,000 waiting, `bench_workflow --claims --full-queue`)."""
    with Engine(sqlite_url) as e:
        store = e.store
        sql = store._q["claim_next"]  # type: ignore[attr-defined]
        plan = store._db.execute(f"EXPLAIN QUERY PLAN {sql}", ("w", 1.0, 2.0, 2.0)).fetchall()  # type: ignore[attr-defined]
        text = " | ".join(str(r[-1]) for r in plan)
        # The full queues, one list computed once; each counted through the claimed rows only.
        assert "LIST SUBQUERY" in text and "SEARCH h USING INDEX cw_queue_held" in text, text
        (walk,) = [r[1] for r in plan if str(r[-1]).startswith("SEARCH w ")]
        per_row = [r for r in plan if r[1] == walk and "CORRELATED" in str(r[-1])]
        assert not per_row, text  # no subquery run again for each row the claim passes


def test_the_postgres_claim_reads_an_index_in_order(postgres_url: str) -> None:
    with Engine(postgres_url) as e:
        for n in range(50):
            e.start(wp.small, n)
        store = e.store
        prefix = postgres_url.rpartition("prefix=")[2]
        store._db.execute("SET enable_seqscan = off")  # type: ignore[attr-defined]
        sql = store._q["claim_next"]  # type: ignore[attr-defined]
        rows = store._db.execute(f"EXPLAIN {sql}", ("w", 1.0, 2.0, 2.0)).fetchall()  # type: ignore[attr-defined]
        text = " | ".join(r[0] for r in rows)
        assert f"Index Scan using {prefix}_due" in text and "Sort" not in text, text


@pytest.mark.parametrize("bad", [{"lease": 0}, {"cache_size": -1}, {"batch": 0}])
def test_engine_settings_out_of_range_are_refused(sqlite_url: str, bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="Engine needs lease > 0"):
        Engine(sqlite_url, **bad)  # type: ignore[arg-type]
