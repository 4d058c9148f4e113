"""Durable coroutines across processes: a counter continued from a state file, and a
workflow killed with SIGKILL at random points that must finish exactly as if never killed."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import coroutine

HERE = Path(__file__).resolve().parent
COUNTER = HERE.parent / "examples" / "durable_counter.py"
WORKFLOW = HERE / "durable_programs" / "crash_workflow.py"
# The child processes import the same `coroutine` as this one, installed or not.
PYTHONPATH = os.pathsep.join(
    [str(Path(coroutine.__file__).resolve().parent.parent), os.environ.get("PYTHONPATH", "")]
)


def run(args: list[str], durable: bool, cwd: Path) -> str:
    env = {**os.environ, "COROUTINE_DURABLE": "1" if durable else "0", "PYTHONPATH": PYTHONPATH}
    out = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and out.stderr == "", out.stderr
    return out.stdout


def test_counter_continues_from_its_state_file_across_four_processes(tmp_path: Path) -> None:
    outputs = [run([str(COUNTER)], durable=True, cwd=tmp_path) for _ in range(4)]
    assert outputs == ["yield: 0\n", "yield: 1\n", "yield: 2\n", ""]
    assert (tmp_path / "coroutine.state").read_bytes()[:4] == b"CoRo"


def test_counter_starts_over_in_every_process_when_volatile(tmp_path: Path) -> None:
    outputs = [run([str(COUNTER)], durable=False, cwd=tmp_path) for _ in range(2)]
    assert outputs == ["yield: 0\n", "yield: 0\n"]
    assert not (tmp_path / "coroutine.state").exists()


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_a_workflow_killed_at_random_points_finishes_with_the_uninterrupted_output(
    tmp_path: Path,
) -> None:
    expected = run([str(WORKFLOW), str(tmp_path / "clean.db")], durable=False, cwd=tmp_path)
    assert expected.count("\n") == 11

    seed = random.randrange(2**32)
    rng = random.Random(seed)
    db = str(tmp_path / "crashy.db")
    cmd = [sys.executable, str(WORKFLOW), db, "--delay", "0.01"]
    env = {**os.environ, "PYTHONPATH": PYTHONPATH}
    kills = 0
    deadline = time.monotonic() + 40
    while True:
        assert time.monotonic() < deadline, f"the workflow never finished (seed {seed})"
        proc = subprocess.Popen(
            cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            out, err = proc.communicate(timeout=rng.uniform(0.05, 0.5) if kills < 12 else 30)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
            kills += 1
            continue
        assert proc.returncode == 0, f"seed {seed}: {err.decode()}"
        break
    assert kills > 0, f"seed {seed}: no run was killed"
    assert out.decode() == expected, f"seed {seed}, {kills} kills"
