"""The ``send`` and ``fork`` commands of ``python -m coroutine.workflow``."""

from __future__ import annotations

import subprocess
import sys

import wf_programs as wp
import wf_wait_programs as ww
from wf_support import subprocess_env

from coroutine.workflow import Engine


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "coroutine.workflow", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env(), timeout=60)


def test_send_and_fork_from_the_command_line(sqlite_url: str, effects: str) -> None:
    with Engine(sqlite_url) as e:
        box = e.start(ww.collect, 2)
        out = _cli("send", sqlite_url, box, "m", "{'n': 1}")
        assert (out.returncode, out.stdout) == (0, f"sent {{'n': 1}} to {box} on 'm'\n")
        assert _cli("send", sqlite_url, box, "m", "'two'").returncode == 0
        bad = _cli("send", sqlite_url, box, "m", "two")
        assert bad.returncode == 2
        assert "'two' is not a Python literal; quote a string" in bad.stderr
        assert _cli("send", sqlite_url, "nope", "m", "1").returncode == 2  # no such workflow
        e.run()
        assert e.result(box) == [{"n": 1}, "two"]

        done = e.start(wp.small, 3)
        e.run()
        fork = _cli("fork", sqlite_url, done, "1")
        assert fork.returncode == 0, fork.stderr
        new = fork.stdout.strip()
        e.run()
        assert e.result(new) == e.result(done)
        assert [s.step for s in e.steps(new)] == [0, 1]
        assert set(wp.effect_counts(effects)) >= {f"{new}:1"} and f"{new}:0" not in set(
            wp.effect_counts(effects)
        )
        wrong = _cli("fork", sqlite_url, done, "7")
        assert wrong.returncode == 2
        assert "no committed state at step 7; fork it at one of [0, 1, 2]" in wrong.stderr
