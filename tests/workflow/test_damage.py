"""A damaged store is reported, never read as an older or an empty one.

SQLite, with a worker process running a 150-step workflow, as the review did: the file
truncated, garbage written into the middle of its write-ahead log (and the worker killed, so
that the next process runs SQLite's recovery, which stops at the garbage and drops every
later commit), the files deleted. On every store: a state edited behind the engine's back
fails its checksum.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import wf_programs as wp
from wf_support import Procs, subprocess_env, wait_for

from coroutine.workflow import Engine, StoreDamagedError, WorkflowNotFoundError


def _running(sqlite_url: str, effects: str, procs: Procs) -> tuple[str, object, Path]:
    with Engine(sqlite_url) as e:
        wid = e.start(wp.chain, 150, 0.005)
    worker = procs.start(["worker", sqlite_url], subprocess_env(effects))
    with Engine(sqlite_url) as e:
        wait_for(lambda: e.info(wid).step >= 40, 60, "the worker does not run")
    return wid, worker, Path(sqlite_url.removeprefix("sqlite:///"))


def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "coroutine.workflow", *args[:1], url, *args[1:]]
    return subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env(), timeout=60)


def test_files_deleted_under_a_running_worker_are_reported_by_it_and_by_the_next_opener(
    sqlite_url: str, effects: str, procs: Procs
) -> None:
    wid, worker, db = _running(sqlite_url, effects, procs)
    for suffix in ("", "-wal", "-shm"):
        os.unlink(f"{db}{suffix}")
    assert worker.wait(timeout=10) == 2  # type: ignore[attr-defined]
    log = (procs.logs / "worker0.log").read_text()
    assert "StoreDamagedError" in log and "was deleted or replaced while this process" in log
    with pytest.raises(StoreDamagedError, match=r"is missing or empty, but .*-coroutine/cw.seq"):
        Engine(sqlite_url)
    out = _cli(sqlite_url, "info", wid)
    assert out.returncode == 2 and "StoreDamagedError" in out.stderr and "backup" in out.stderr


def test_garbage_in_the_wal_is_reported_not_read_as_an_older_store(
    sqlite_url: str, effects: str, procs: Procs
) -> None:
    _, worker, db = _running(sqlite_url, effects, procs)
    wal = Path(f"{db}-wal")
    with open(wal, "r+b") as f:  # 8 KB in the middle, as the review did
        f.seek(wal.stat().st_size // 2)
        f.write(os.urandom(8192))
    os.killpg(worker.pid, signal.SIGKILL)  # type: ignore[attr-defined]
    worker.wait()  # type: ignore[attr-defined]
    applied = len(wp.effect_counts(effects))
    with pytest.raises(StoreDamagedError, match=r"holds \d+ commits, but its workers recorded"):
        Engine(sqlite_url)
    assert applied >= 40  # what a silent rollback would have run again


def test_a_truncated_store_file_is_reported(sqlite_url: str, effects: str, procs: Procs) -> None:
    wid, worker, db = _running(sqlite_url, effects, procs)
    with sqlite3.connect(db) as c:  # move the log into the file, as SQLite does by itself
        c.execute("PRAGMA wal_checkpoint(PASSIVE)")
    os.truncate(db, db.stat().st_size // 2)
    os.killpg(worker.pid, signal.SIGKILL)  # type: ignore[attr-defined]
    worker.wait()  # type: ignore[attr-defined]
    with pytest.raises(StoreDamagedError, match=r"damaged|integrity|commits"):
        with Engine(sqlite_url) as e:
            e.result(wid)  # never WorkflowNotFoundError


def test_a_damaged_page_fails_the_integrity_check_on_open(sqlite_url: str) -> None:
    with Engine(sqlite_url) as e:
        for n in range(300):
            e.start(wp.small, n)
    db = Path(sqlite_url.removeprefix("sqlite:///"))
    with sqlite3.connect(db) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = c.execute("PRAGMA page_size").fetchone()[0]
    with open(db, "r+b") as f:
        f.seek(3 * page)
        f.write(b"\xff" * 64)
    with pytest.raises(StoreDamagedError, match=r"fails its integrity check|is damaged"):
        Engine(sqlite_url)


def test_a_state_edited_behind_the_engine_fails_its_checksum(store_url: str) -> None:
    with Engine(store_url) as e:
        wid = e.start(wp.doubles, 3)
        e.run()
        assert e.result(wid) == 6
        store = e.store
        if hasattr(store, "_r"):
            store._r.lset(store._k("st", wid), 1, b"edited")  # type: ignore[attr-defined]
        else:
            sql = store._d.sql("UPDATE {p}_states SET blob = ? WHERE seq = 1")  # type: ignore[attr-defined]
            store._db.execute(sql, (b"edited",))  # type: ignore[attr-defined]
        with pytest.raises(StoreDamagedError, match=f"states of workflow '{wid}' do not match"):
            e.result(wid)
        with pytest.raises(WorkflowNotFoundError):
            e.result("nope")


def test_a_commit_made_by_another_process_while_the_store_opens_is_not_a_lost_commit(
    sqlite_url: str,
) -> None:
    # Four workers opening one store at once met this (CI): the opener counted the states,
    # another worker committed one and wrote the mark, then the opener read the mark.
    from coroutine.workflow._sqlite_file import SQLiteFile

    path = sqlite_url.removeprefix("sqlite:///")
    with Engine(sqlite_url) as other:
        other.start(wp.small, 0)

        class CommitAfterCounting:
            def __init__(self, db: sqlite3.Connection) -> None:
                self.db = db

            def execute(self, sql: str) -> sqlite3.Cursor:
                cursor = self.db.execute(sql)
                if "max(k)" in sql:
                    rows = cursor.fetchall()
                    other.start(wp.small, 1)  # commits, then writes the mark
                    cursor = self.db.execute("SELECT ?", rows[0])
                return cursor

        with sqlite3.connect(path) as db:
            count_sql = "SELECT coalesce(max(k), 0) FROM cw_states"
            SQLiteFile(path, "cw").opened(CommitAfterCounting(db), count_sql)  # type: ignore[arg-type]
            guard = SQLiteFile(path, "cw")  # the count itself is still checked
            os.pwrite(guard._mark, (10**6).to_bytes(8, "big"), 0)
            with pytest.raises(StoreDamagedError, match="holds 2 commits, but its workers"):
                guard.opened(db, count_sql)
