"""What a person sees: `Engine.info` and `Engine.steps`, the list/info/steps/result/cancel
commands, and a worker's one line per step with --verbose."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import wf_programs as wp
from wf_support import subprocess_env

from coroutine.workflow import Engine, WorkflowNotFoundError


@pytest.fixture(autouse=True)
def calls() -> None:
    wp.CALLS.clear()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "coroutine.workflow", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env(), timeout=60)


def test_info_and_steps_tell_what_happened(store_url: str) -> None:
    t = time.time()
    with Engine(store_url) as e:
        i = e.start(wp.with_retry, 3)
        before = e.info(i)
        assert (before.status, before.step, before.args, before.owner) == ("running", 0, (3,), "")
        assert t <= before.created == before.updated <= time.time()
        e.run()
        info = e.info(i)
        assert (info.entry, info.status, info.step, info.error) == (
            "wf_programs:with_retry", "done", 2, ""
        )  # fmt: skip
        assert info.updated >= info.created
        steps = e.steps(i)
        assert [(s.step, s.activity, s.args, s.kwargs) for s in steps] == [
            (0, "wf_programs:flaky", (1, 3), {}),
            (1, "wf_programs:double", (5,), {}),
        ]
        assert steps[0].error == "wf_programs.Declined: declined 1" and steps[0].result is None
        assert (steps[1].error, steps[1].result) == ("", 10)
        assert all(t <= s.started <= s.finished <= time.time() for s in steps)
        f = e.start(wp.uncaught)
        e.run()
        assert e.info(f).error == "wf_programs.Declined: declined 2"
        with pytest.raises(WorkflowNotFoundError):
            e.info("nope")
        with pytest.raises(WorkflowNotFoundError):
            e.steps("nope")


def test_the_commands_print_the_store_for_a_person(sqlite_url: str) -> None:
    with Engine(sqlite_url) as e:
        done = e.start_as("order-1", wp.doubles, 2)
        e.run()
        running = e.start_as("order-2", wp.doubles, 5)
    listed = _cli("list", sqlite_url)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["ID", "STATUS", "STEP", "UPDATED", "ENTRY"]
    assert lines[1].split()[:3] == ["order-1", "done", "2"]
    assert lines[2].split()[:3] == ["order-2", "running", "0"]
    assert lines[-1] == "2 workflows, 1 running"
    info = _cli("info", sqlite_url, done).stdout
    assert "call:       wf_programs:doubles(2)" in info and "status:     done" in info
    steps = _cli("steps", sqlite_url, done).stdout.splitlines()
    assert [s.split()[0] for s in steps] == ["0", "1"]
    assert "wf_programs:double(0) -> 0" in steps[0] and "wf_programs:double(1) -> 2" in steps[1]
    assert _cli("result", sqlite_url, done).stdout == "2\n"
    still = _cli("result", sqlite_url, running)
    assert still.returncode == 3 and "still running at step 0" in still.stderr
    assert _cli("cancel", sqlite_url, running).stdout == "cancelled order-2\n"
    again = _cli("cancel", sqlite_url, running)
    assert again.returncode == 1 and "is not running (failed)" in again.stderr
    failed = _cli("result", sqlite_url, running)
    assert failed.returncode == 1
    assert "failed: coroutine.workflow.WorkflowCancelledError" in failed.stderr
    missing = _cli("info", sqlite_url, "nope")
    assert missing.returncode == 2 and "WorkflowNotFoundError: no workflow 'nope'" in missing.stderr


def test_a_verbose_worker_logs_one_line_per_step(sqlite_url: str) -> None:
    with Engine(sqlite_url) as e:
        i = e.start(wp.doubles, 3)
    out = _cli("worker", sqlite_url, "--until-idle", "--verbose")
    assert out.returncode == 0, out.stderr
    lines = [ln for ln in out.stderr.splitlines() if f"workflow {i}" in ln]
    assert len(lines) == 4, out.stderr
    assert "step 0: wf_programs:double(0) -> 0" in lines[0]
    assert "step 2: wf_programs:double(2) -> 4" in lines[2]
    assert lines[3].endswith(f"workflow {i} (wf_programs:doubles) done")
    quiet = _cli("worker", sqlite_url, "--until-idle")
    assert quiet.returncode == 0 and quiet.stderr == ""
