"""`Engine.fork`: a workflow that failed at a step is forked there once the fix is deployed;
the fork replays the steps before it (their effects not applied again) and runs live from
there, with real workers on every store and over Celery."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import wf_programs as wp
import wf_wait_programs as ww
from wf_backends import KINDS, Backend
from wf_support import Procs, wait_for

N = 3


@pytest.fixture(params=KINDS)
def backend(
    request: pytest.FixtureRequest,
    procs: Procs,
    effects: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Backend]:
    monkeypatch.setenv("WF_GATE", str(tmp_path / "gate"))
    b = Backend(request.param, request, procs, effects)
    yield b
    b.close()


def test_a_fork_replays_the_steps_before_it_and_runs_on_live(
    backend: Backend, effects: str, tmp_path: Path
) -> None:
    e = backend.engine
    gate = tmp_path / "gate"
    gate.touch()  # the bug
    old = e.start(ww.gated, N)
    backend.start()
    wait_for(lambda: e.status(old) != "running", 30, "the workflow did not fail")
    with pytest.raises(RuntimeError, match="the gate is closed"):
        e.result(old)
    with pytest.raises(ValueError, match=r"no committed state at step 9; fork it at one of "):
        e.fork(old, 9)
    gate.unlink()  # the fix, deployed
    new = e.fork(old, N)
    wait_for(lambda: e.status(new) != "running", 30, "the fork did not end")
    first = [i * 7 % 1000 for i in range(N)]
    assert e.result(new) == first + [(100 + i) * 7 % 1000 for i in range(N)]
    counts = wp.effect_counts(effects)  # the first N steps ran once, in the old workflow
    assert counts == {f"{old}:{i}": 1 for i in range(N)} | {
        f"{new}:{i}": 1 for i in range(N + 1, 2 * N + 1)
    }
    steps = e.steps(new)
    assert [s.step for s in steps] == list(range(2 * N + 1))
    assert [s.result for s in steps[:N]] == first  # the replayed steps, as recorded
    assert e.status(old) == "failed"  # left as it was


def test_a_fork_at_step_zero_runs_everything_again(backend: Backend, effects: str) -> None:
    e = backend.engine
    old = e.start(wp.small, 5)
    backend.start()
    wait_for(lambda: e.status(old) != "running", 30, "the workflow did not end")
    new = e.fork(old, 0)
    wait_for(lambda: e.status(new) != "running", 30, "the fork did not end")
    assert e.result(new) == e.result(old)
    assert set(wp.effect_counts(effects)) == {f"{w}:{i}" for w in (old, new) for i in (0, 1)}
