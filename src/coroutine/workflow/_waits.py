"""Waiting in a workflow body without holding a worker: timers, messages, events, children.

Theory of operation. A body waits by yielding a `Wait` to its engine, as it yields an
`ActivityCall` for a step. The runner answers it (`answer`) when it can: the answer is sent
into the body and committed as one step, like an activity's result, so a replay gets the
same answer without asking again. When it cannot answer yet, it raises `Suspend`: the
runner then gives the claim back with ``Store.suspend`` (fenced like a commit: a stale
worker's is refused), the row due at the wake-up time, and commits nothing. Whichever worker
claims the row at that time replays to the same yield and asks again. So a wait holds no
worker and no lease, and a worker killed during it loses nothing.

Times are decided once and recorded: a wait with a time limit first yields a ``deadline``
wait, answered with ``now + seconds`` and committed; the wait itself then carries that
absolute time, so every replay and every worker judges against the same deadline, and a
timer is only answered once a worker's clock has passed it (never early, also after a
crash: the row is not due before it, and the answer checks it again).

* `sleep`: answered once the deadline has passed.
* `receive`: answered with the oldest message on its topic not taken by a committed step
  (``Store.take`` marks it with the step, fenced; a mark left by a step that never committed
  is taken again by that step's retry), or with a time-out once the deadline has passed.
  ``Engine.send`` stores the message and wakes the row in one transaction; ``Store.suspend``
  re-checks for a message in its own transaction, so a message sent while the worker was
  deciding to wait is not left until the deadline.
* `set_event`: a fenced upsert of the key, answered with None.
* `start_child`: creates the child under the id ``"<parent id>~<step>"`` (so a retry of the
  step finds it instead of starting a second one), answered with that id.
* `join`: answered with the child's outcome once it is done or failed; until then the parent
  sleeps, woken by the child's worker right after the child's last commit (``Store.suspend``
  looks at the child in its own transaction, so an end while the parent was deciding to
  wait is not missed); in case the child's worker died between its commit and the wake-up,
  the parent looks again after a lease.

A receive or a join that cannot be answered in a step that has already run activities (one
failed for good, thrown in and caught) is answered `AGAIN` instead of suspending: that step
commits, so its activities are not run again when the workflow wakes, and the body asks
again at the next step, where there is nothing to lose by suspending. (A sleep, or a wait
with a time limit, always begins its step: its ``deadline`` wait commits first.)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from coroutine import Yield
from coroutine.types import Register

from ._activity import ActivityCall, _in_workflow
from ._boundary import check_args
from ._errors import WorkflowError
from ._records import decode_value, encode_value, rebuild_error
from ._start import bind, entry_name

if TYPE_CHECKING:
    from ._store import Store

    class Runner(Protocol):
        """What the waits use of a `_runner.Runner` (not imported: it imports this)."""

        store: Store
        lease: float
        spawned: list[str]

    from ._store import Claim

__all__ = [
    "FOREVER",
    "JOIN_POLL",
    "Suspend",
    "Wait",
    "answer",
    "join",
    "receive",
    "set_event",
    "sleep",
    "start_child",
]

T = TypeVar("T")

# The due time of a row waiting with no time limit: until a message or a child wakes it.
FOREVER = 1e13
# How often a parent waiting in `join` looks at its child (at least; the lease, if longer),
# in case the child's worker died between its last commit and the wake-up.
JOIN_POLL = 1.0
# `receive`'s and `join`'s answer when the step must commit before they wait (see above).
AGAIN = ("again",)
ASKS_AGAIN = frozenset({"receive", "join"})


class Wait(ActivityCall):
    """What a body yields to wait: an `ActivityCall` the engine answers itself, named
    ``coroutine.workflow:KIND`` (so it reads as a step in `Engine.steps`)."""

    @property
    def kind(self) -> str:  # "deadline", "sleep", "receive", "set_event", "start_child", "join"
        return self.name[len(_NAME) :]


_NAME = "coroutine.workflow:"
Register(
    Wait,
    lambda w: (w.name, w.args),
    lambda t: Wait(t[0], t[1], {}),
    name="coroutine.workflow.Wait",
)


class Suspend(Exception):
    """Raised by `answer`: give the claim back, due again at `due`, waiting for `what`."""

    def __init__(self, due: float, what: str) -> None:
        super().__init__(due, what)
        self.due, self.what = due, what


def _wait(kind: str, *args: Any) -> Any:
    if not _in_workflow():
        raise WorkflowError(
            f"coroutine.workflow.{kind}() waits in a workflow body that an engine runs; "
            "call it from a workflow function (not from an activity or a plain call)"
        )
    return Yield[ActivityCall, Any](Wait(_NAME + kind, args, {}))


def _deadline(seconds: float, what: str) -> float:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds >= 0:
        raise ValueError(f"{what} takes a number of seconds >= 0 (got {seconds!r})")
    deadline: float = _wait("deadline", float(seconds))
    return deadline


def sleep(seconds: float) -> None:
    """Wait `seconds` in a workflow body, holding no worker: a durable timer.

    The wake-up time is recorded when the timer starts; the workflow's row is not claimed
    before it, so workers may stop, crash or be redeployed meanwhile. It never returns
    early, also after a crash (a worker whose clock is behind waits longer).

    >>> # inside a workflow body:  sleep(24 * 3600)  # a day, no worker held

    Raises:
        ValueError: `seconds` is negative or not a number.
        WorkflowError: called outside a workflow body.
    """
    _wait("sleep", _deadline(seconds, "sleep()"))


def receive(topic: str, timeout: float | None = None) -> Any:
    """The next value sent to this workflow on `topic` (`Engine.send`), waiting for it.

    Values arrive in the order they were sent, each once, whatever workers crash. With a
    `timeout` (seconds), `TimeoutError` is raised here when none came in time (the deadline
    is recorded when the call starts). No worker is held while it waits.

    >>> # inside a workflow body:  decision = receive("approval", timeout=3600)

    Raises:
        TimeoutError: `timeout` seconds passed with no value on `topic`.
        TypeError: `topic` is not a str.
        WorkflowError: called outside a workflow body.
    """
    if not isinstance(topic, str):
        raise TypeError(f"receive() takes a str topic (got {topic!r})")
    deadline = None if timeout is None else _deadline(timeout, "receive(timeout=...)")
    got = _wait("receive", topic, deadline)
    while got[0] == AGAIN[0]:
        got = _wait("receive", topic, deadline)
    if got[0] == "timeout":
        raise TimeoutError(f"no value on topic {topic!r} within {timeout} s")
    return got[1]


def set_event(key: str, value: Any) -> None:
    """Publish `value` under `key` for `Engine.get_event` (a later call replaces it).

    Raises:
        TypeError: `key` is not a str, or `value` is not plain data (None, bool, int, float,
            str, bytes, list, tuple, dict, set, frozenset).
        WorkflowError: called outside a workflow body.
    """
    if not isinstance(key, str):
        raise TypeError(f"set_event() takes a str key (got {key!r})")
    encode_value(value)  # plain data, or TypeError here
    _wait("set_event", key, value)


def start_child(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> str:
    """Start ``fn(*args, **kwargs)`` as a child workflow; return its id, for `join`.

    The child runs on any worker, as a workflow of its own. It is started once, even if
    this worker dies right after (its id is ``"<this workflow's id>~<step>"``).

    Raises:
        TypeError: as `Engine.start`: `fn` is not a module-level workflow function, or the
            arguments do not fit it or are not plain data.
        WorkflowError: called outside a workflow body.
    """
    entry = entry_name(fn, in_main_ok=False)
    a, kw = bind(fn, entry, args, kwargs)
    check_args(a, kw, f"an argument of child workflow {entry}")
    child: str = _wait("start_child", entry, encode_value((a, kw)))
    return child


def join(id: str) -> Any:
    """The result of child workflow `id` (from `start_child`), waiting for it to end.

    No worker is held while it waits. If the child failed, its exception is raised here
    (rebuilt as `Engine.result` does).

    Raises:
        Exception: the child's exception (`WorkflowCancelledError` if it was cancelled).
        WorkflowError: called outside a workflow body.
    """
    got = _wait("join", id)
    while got[0] == AGAIN[0]:
        got = _wait("join", id)
    if got[0] == "failed":
        raise rebuild_error(got[1])
    return got[1]


# --- the worker's side ---------------------------------------------------------------------


def answer(runner: Runner, claim: Claim, step: int, wait: Wait) -> Any:
    """The answer to `wait`, yielded at `step` of the claimed workflow; or raise `Suspend`.

    Raises:
        ClaimLost: the store refused a fenced write (another worker has the workflow).
    """
    from ._keeper import ClaimLost

    store, kind, args = runner.store, wait.kind, wait.args
    at = claim._replace(step=step)
    if kind == "deadline":
        return time.time() + args[0]
    if kind == "sleep":
        if time.time() >= args[0]:
            return None
        raise Suspend(args[0], "sleep")
    if kind == "receive":
        topic, deadline = args
        current, got = store.take(at, topic)
        if not current:
            raise ClaimLost(f"workflow {claim.id}: claim lost while receiving")
        if got is not None:
            return ("value", decode_value(got))
        if deadline is not None and time.time() >= deadline:
            return ("timeout",)
        raise Suspend(FOREVER if deadline is None else deadline, f"receive:{topic}")
    if kind == "set_event":
        if not store.set_event(at, args[0], encode_value(args[1])):
            raise ClaimLost(f"workflow {claim.id}: claim lost while setting an event")
        return None
    if kind == "start_child":
        return _start_child(runner, claim, step, args[0], args[1])
    if kind == "join":
        return _outcome(runner, args[0])
    raise TypeError(f"a workflow body yielded an unknown wait {wait!r}")


def _start_child(runner: Runner, claim: Claim, step: int, entry: str, args: str) -> str:
    from ._keeper import ClaimLost
    from ._records import Row
    from ._workflows import entry_of, limits, new_workflow, save_state

    child = f"{claim.id}~{step}"
    call = entry_of(entry, args)
    state = save_state(new_workflow(call))
    # Checked current just before: a worker replaced meanwhile would start a child the new
    # one starts anyway, under the same id (so at most one exists).
    if not runner.store.renew(claim, time.time() + runner.lease):
        raise ClaimLost(f"workflow {claim.id}: claim lost before starting a child")
    now = time.time()
    queue, deadline = limits(call.func, now)  # its own queue and time limit, as if started
    row = Row(child, entry, args, "running", 0, queue=queue, deadline=deadline)
    taken = runner.store.create(row, state, now)
    if taken is None:
        runner.spawned.append(child)
    elif (taken.entry, taken.args) != (entry, args):
        raise WorkflowError(f"child id {child!r} is taken by another workflow ({taken.entry})")
    return child


def _outcome(runner: Runner, child: str) -> tuple[str, Any]:
    from ._workflows import entry_of, new_workflow

    row = runner.store.get(child)
    if row is None:
        raise WorkflowError(f"join({child!r}): no such workflow; join takes a start_child id")
    if row.status == "failed":
        return ("failed", row.error)
    if row.status == "done":
        coro = new_workflow(entry_of(row.entry, row.args))
        coro.Context().Unmarshal(runner.store.load_state(child))
        return ("done", coro.Result())
    raise Suspend(time.time() + max(JOIN_POLL, runner.lease), f"join:{child}")


def finished(runner: Runner, id: str) -> None:
    """Workflow `id` just ended: wake its parent if it is waiting in `join` for it."""
    parent, sep, _ = id.rpartition("~")
    if sep:
        runner.store.wake(parent, f"join:{id}", time.time())
