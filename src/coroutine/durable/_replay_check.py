"""`replay_elsewhere`: replay a state in a fresh interpreter with another hash seed."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass

from ._keys import _Settings

__all__ = ["Divergence", "replay_elsewhere"]

# The child reads this process's settings (MAC keys and transform, pickled), then the state.
_SCRIPT = """
import importlib, pickle, sys
from coroutine import InvalidStateError
from coroutine.durable import _keys
module, _, name = sys.argv[1].partition(":")
factory = getattr(importlib.import_module(module), name)
data = sys.stdin.buffer.read()
n = int.from_bytes(data[:8], "big")
_keys._Settings.keys, _keys._Settings.transform = pickle.loads(data[8 : 8 + n])
state = data[8 + n :]
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
    there (so ``finally`` blocks run; nothing after the position runs). The child reads
    states with this process's keys and transform (`configure`), passed to it through its
    standard input: a transform must be picklable by reference (`FernetTransform` is).

    Returns:
        None if every replay reached the recorded position, else the first `Divergence`.

    Raises:
        RuntimeError: the child failed otherwise (its stderr is in the message).
        TypeError: the configured transform cannot be pickled for the child.
        subprocess.TimeoutExpired: a child ran longer than `timeout` seconds.
    """
    try:
        settings = pickle.dumps((_Settings.keys, _Settings.transform))
    except Exception as exc:
        raise TypeError(
            f"the configured transform {_Settings.transform!r} cannot be passed to the child "
            f"replay ({exc}); define its class at module level, so that pickle can name it"
        ) from None
    stdin = len(settings).to_bytes(8, "big") + settings + bytes(state)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    for seed in hashseeds:
        env["PYTHONHASHSEED"] = str(seed)
        done = subprocess.run(
            [sys.executable, "-c", _SCRIPT, factory],
            input=stdin, capture_output=True, env=env, timeout=timeout, check=False,
        )  # fmt: skip
        if done.returncode == 3:
            return Divergence(str(seed), done.stdout.decode(errors="replace"))
        if done.returncode != 0:
            why = done.stderr.decode(errors="replace")
            raise RuntimeError(f"replaying with PYTHONHASHSEED={seed} failed: {why}")
    return None
