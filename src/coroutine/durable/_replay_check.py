"""`replay_elsewhere`: replay a state in a fresh interpreter with another hash seed."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Divergence", "replay_elsewhere"]

_SCRIPT = """
import importlib, sys
from coroutine import InvalidStateError
module, _, name = sys.argv[1].partition(":")
factory = getattr(importlib.import_module(module), name)
state = sys.stdin.buffer.read()
coro = factory()
coro.Context().Unmarshal(state)
coro.Stop()  # replay to the recorded position, then unwind from there: nothing runs live
try:
    coro.Next()
except InvalidStateError as exc:
    print(exc, end="")
    sys.exit(3)
"""


@dataclass(frozen=True)
class Divergence:
    """The first place where a replay under `hashseed` departed from the recorded run."""

    hashseed: str
    message: str  #: the InvalidStateError of the replay: the yield (counted from 0) and values

    def __str__(self) -> str:
        return f"with PYTHONHASHSEED={self.hashseed}: {self.message}"


def replay_elsewhere(
    state: bytes, factory: str, *, hashseeds: Iterable[int] = (1, 2, 3), timeout: float = 60
) -> Divergence | None:
    """Replay `state` in fresh interpreters, one per hash seed; the first divergence found.

    A body that iterates a set of strings, or keys a decision on ``hash()`` or ``id()``,
    replays differently in another process; this test helper finds such hazards before a
    real resume does. `factory` (``"module:function"``, importable by the child, which gets
    this process's ``sys.path``) returns a new durable coroutine for the state. The child
    unmarshals `state`, replays it up to its recorded position, then unwinds the body from
    there (so ``finally`` blocks run; nothing after the position runs).

    Returns:
        None if every replay reached the recorded position, else the first `Divergence`.

    Raises:
        RuntimeError: the child failed otherwise (its stderr is in the message).
    """
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    for seed in hashseeds:
        env["PYTHONHASHSEED"] = str(seed)
        done = subprocess.run(
            [sys.executable, "-c", _SCRIPT, factory],
            input=state, capture_output=True, env=env, timeout=timeout, check=False,
        )  # fmt: skip
        if done.returncode == 3:
            return Divergence(str(seed), done.stdout.decode(errors="replace"))
        if done.returncode != 0:
            why = done.stderr.decode(errors="replace")
            raise RuntimeError(f"replaying with PYTHONHASHSEED={seed} failed: {why}")
    return None
