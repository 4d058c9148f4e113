"""Schedules on real worker processes: each due run started once, however many workers.

A run's workflow id names its due time (``SCHEDULE@2026-12-07T05:00:01Z``); the tests read
the runs from the store and check there is one workflow per due time, none missing while
workers were up, and one (not one per missed time) for the times that fell due while every
worker was down (SIGKILLed).
"""

from __future__ import annotations

import calendar
import os
import signal
import subprocess
import sys
import time

import pytest
import wf_queue_programs as wq
from wf_support import REDIS, Procs, subprocess_env, wait_for

from coroutine.workflow import CeleryExecutor, Engine
from coroutine.workflow._schedule import latest_by, next_after

EVERY_SECOND = "* * * * * *"


def _due(wid: str) -> float:
    return float(calendar.timegm(time.strptime(wid.rsplit("@", 1)[1], "%Y-%m-%dT%H:%M:%SZ")))


def _runs(e: Engine, sid: str) -> list[str]:
    return sorted((w.id for w in e.list() if w.id.startswith(f"{sid}@")), key=_due)


def _check_runs(e: Engine, sid: str, effects: str) -> list[float]:
    """Every run done, one workflow per due time, its activity run; the due times."""
    ids = _runs(e, sid)
    wait_for(lambda: all(e.status(i) == "done" for i in ids), 60, "every run done")
    dues = [_due(i) for i in ids]
    assert len(set(dues)) == len(dues), f"two runs for one due time: {ids}"
    ran = {key.rsplit(":", 1)[0] for key, *_ in wq.spans(effects)}
    assert ran == set(ids)
    return dues


def test_each_due_run_starts_once_on_three_workers_and_once_after_all_were_killed(
    store_url: str, effects: str, procs: Procs
) -> None:
    env = subprocess_env(effects)
    with Engine(store_url) as e:
        sid = e.schedule(wq.scheduled, "tick", cron=EVERY_SECOND)
        workers = [procs.start(["worker", store_url, "--lease", "1"], env) for _ in range(3)]
        wait_for(lambda: len(_runs(e, sid)) >= 2, 60, "two runs")
        for w in workers:
            os.killpg(w.pid, signal.SIGKILL)
            w.wait()
        killed = time.time()
        time.sleep(2.2)  # two or three runs fall due with no worker up
        back = time.time()
        for _ in range(2):
            procs.start(["worker", store_url, "--lease", "1"], env)
        wait_for(lambda: _due(_runs(e, sid)[-1]) >= back + 1, 60, "runs after the return")
        assert e.unschedule(sid) and not e.unschedule(sid)
        dues = _check_runs(e, sid, effects)
    up = [d for d in dues if d < killed - 1]
    assert up == [up[0] + k for k in range(len(up))], f"a run was missed: {dues}"
    down = [d for d in dues if killed < d < back]
    assert len(down) <= 1, f"each missed run was started: {dues}"
    after = [d for d in dues if d > killed]
    assert after == [after[0] + k for k in range(len(after))], f"a run was missed: {dues}"


def test_a_run_due_while_no_worker_was_up_starts_once_when_workers_return(
    store_url: str, effects: str, procs: Procs
) -> None:
    yearly = "0 0 1 1 *"  # 00:00 UTC on January 1st: never due during a test, unless told
    with Engine(store_url) as e:
        sid = e.schedule(wq.scheduled, "yearly", cron=yearly)
        (stored,) = e.store.schedules()
        latest = latest_by(yearly, time.time())
        three_years_ago = latest_by(yearly, latest - 3 * 366 * 86400)
        # As if every worker had been down for years: four runs missed.
        assert e.store.move_schedule(sid, stored[4], three_years_ago)
        env = subprocess_env(effects)
        for _ in range(3):  # all at once, racing for the run
            procs.start(["worker", store_url], env)
        wait_for(lambda: e.schedules()[0].next > time.time(), 60, "the schedule moved on")
        dues = _check_runs(e, sid, effects)
        assert dues == [latest]
        assert e.schedules()[0].next == next_after(yearly, time.time())


def test_schedules_on_celery_started_by_two_supervisors(
    redis_url: str, effects: str, procs: Procs, queue: str
) -> None:
    env = subprocess_env(effects)
    procs.start(["celery-worker", REDIS, "--queue", queue, "--name", "s0"], env)
    for _ in range(2):
        procs.start(["supervise", redis_url, REDIS, "--queue", queue, "--lease", "1"], env)
    with Engine(redis_url, CeleryExecutor(REDIS, queue=queue)) as e:
        sid = e.schedule(wq.scheduled, "celery", cron=EVERY_SECOND)
        wait_for(lambda: len(_runs(e, sid)) >= 4, 60, "four runs")
        e.unschedule(sid)
        dues = _check_runs(e, sid, effects)
    assert dues == [dues[0] + k for k in range(len(dues))], f"a run was missed: {dues}"


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "coroutine.workflow", "schedule", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)


def test_the_schedule_command_adds_lists_and_removes(sqlite_url: str) -> None:
    env = subprocess_env()
    add = _cli(
        "add", sqlite_url, "wf_queue_programs:scheduled", "0 6 * * 1", "--args", '["x"]', env=env
    )
    assert add.returncode == 0, add.stderr
    sid = add.stdout.strip()
    assert sid.startswith("wf_queue_programs:scheduled#")
    again = _cli(
        "add", sqlite_url, "wf_queue_programs:scheduled", "0 7 * * 1", "--args", '["x"]', env=env
    )
    assert again.stdout.strip() == sid  # the same call: the same schedule, its cron replaced
    listed = _cli("list", sqlite_url, env=env)
    assert listed.returncode == 0
    (line,) = listed.stdout.splitlines()[1:]
    assert line.split()[:6] == [sid, "0", "7", "*", "*", "1"] and "scheduled('x')" in line
    assert " 07:00:00Z " in line
    bad = _cli("add", sqlite_url, "wf_queue_programs:scheduled", "61 * * * *", env=env)
    assert bad.returncode == 2 and "not a cron expression: '61 * * * *'" in bad.stderr
    assert _cli("remove", sqlite_url, sid, env=env).returncode == 0
    gone = _cli("remove", sqlite_url, sid, env=env)
    assert gone.returncode == 1 and f"no schedule {sid!r}" in gone.stderr
    assert _cli("list", sqlite_url, env=env).stdout.splitlines()[1:] == []


def test_without_croniter_schedule_names_the_extra(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "croniter", None)  # as if not installed
    with Engine(sqlite_url) as e, pytest.raises(ImportError, match=r"stackful-coroutines\[cron\]"):
        e.schedule(wq.scheduled, "x", cron=EVERY_SECOND)
