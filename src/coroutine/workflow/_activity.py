"""Activities: the steps of a workflow, and the only place its effects should happen.

Theory of operation. A workflow body runs in a durable coroutine that the engine created and
listed in `_WORKFLOWS`. Calling an `Activity` checks `coroutine.Current()` against that set:

* inside a workflow body (and not inside a coroutine the body made), the call is the body's
  one kind of yield: it checks that its arguments can be recorded (a `TypeError` at the call
  if not, before anything runs), yields an `ActivityCall` (the activity's name and
  arguments) to the engine and returns what the engine sends back. The durable record
  keeps that answer, so a replay returns it without running the activity again. If the
  activity failed for good, the engine throws its exception in at the same `Yield`
  (`Coroutine.throw`), where the body may catch it.
* anywhere else, including inside another activity, it is a plain call of the function.

The engine runs an `ActivityCall` with `run_activity`: it finds the activity by name in
`_REGISTRY` (filled by the decorator, so no import is ever made from a stored name), sets the
idempotency key of the step, and retries under the activity's `RetryPolicy`.

An `async def` activity is the same to the workflow body (a call returns the coroutine's
result, typed so) and to the engine (recorded, retried and keyed alike); each attempt runs
as a task on the worker process's one event loop (`_loop`), which the runner thread waits
on. Outside a workflow, a call runs it there too and returns its result; ``act.fn(...)`` is
the coroutine itself, for async code to await.
"""

from __future__ import annotations

import collections.abc
import contextvars
import dataclasses
import functools
import inspect
import time
import weakref
from collections.abc import Callable
from typing import Any, Generic, ParamSpec, Protocol, TypeVar, overload

from coroutine import Coroutine, Current, Yield
from coroutine.types import Register

from ._boundary import check_args
from ._errors import NotInActivityError
from ._loop import run_async

__all__ = ["Activity", "ActivityCall", "RetryPolicy", "activity", "idempotency_key"]

P = ParamSpec("P")
T = TypeVar("T")

# Coroutines running workflow bodies. Weak: a workflow dropped from a worker's cache is
# collected (and unwound) like any coroutine.
_WORKFLOWS: weakref.WeakSet[Coroutine[Any, Any, Any]] = weakref.WeakSet()

# Every decorated activity by name ("module:QualName"); the engine runs only these.
_REGISTRY: dict[str, Activity[..., Any]] = {}

# The key of the step whose activity is running in this context; unset outside one.
_KEY: contextvars.ContextVar[str] = contextvars.ContextVar("coroutine.workflow.key")


@dataclasses.dataclass(frozen=True)
class ActivityCall:
    """What a workflow body yields to its engine: run activity `name` with these arguments."""

    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


Register(
    ActivityCall,
    lambda c: (c.name, c.args, c.kwargs),
    lambda t: ActivityCall(*t),
    name="coroutine.workflow.ActivityCall",
)


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How often an activity is tried, and how long to wait between tries.

    `attempts` counts every try (3: the first and two retries); the n-th retry waits
    ``min(backoff * multiplier ** (n - 1), max_backoff)`` seconds.
    """

    attempts: int = 3
    backoff: float = 0.1
    multiplier: float = 2.0
    max_backoff: float = 10.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"RetryPolicy.attempts must be at least 1 (got {self.attempts})")
        if self.backoff < 0 or self.max_backoff < 0:
            raise ValueError(f"RetryPolicy backoffs must be >= 0 (got {self.backoff})")

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (counted from 1)."""
        return float(min(self.backoff * self.multiplier ** (retry - 1), self.max_backoff))


class Activity(Generic[P, T]):
    """A function marked with `@activity`: a recorded step inside a workflow body.

    Call it as the function itself; its signature is kept for type checkers. For an
    ``async def`` function, a call returns what the coroutine returns (`T`), run on the
    worker's event loop; `fn` is the function itself (``await act.fn(...)`` in async code).
    """

    def __init__(self, fn: Callable[P, Any], retry: RetryPolicy) -> None:
        self.fn = fn
        self.retry = retry
        self.is_async = inspect.iscoroutinefunction(fn)
        self.name = f"{fn.__module__}:{fn.__qualname__}"
        self._what = f"an argument of activity {self.name}"
        functools.update_wrapper(self, fn)
        _REGISTRY[self.name] = self

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> T:
        if not _in_workflow():
            return self.run(args, kwargs)
        check_args(args, kwargs, self._what)
        result: T = Yield[ActivityCall, Any](ActivityCall(self.name, tuple(args), dict(kwargs)))
        return result

    def run(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        """One plain call of the function: an ``async def`` one on the worker's event loop."""
        result: T
        if self.is_async:
            result = run_async(self.fn(*args, **kwargs), f"async activity {self.name}")
        else:
            result = self.fn(*args, **kwargs)
        return result

    def __repr__(self) -> str:
        kind = "async activity" if self.is_async else "activity"
        return f"<{kind} {self.name} {self.retry}>"


def _in_workflow() -> bool:
    # A function of its own, so that no frame suspended at the Yield holds the coroutine
    # (that would be a cycle through the greenlet, which the collector cannot break).
    current = Current()
    return current is not None and current in _WORKFLOWS


class _Decorator(Protocol):
    """What ``activity(attempts=...)`` returns: the decorator, async-aware as `activity`."""

    @overload
    def __call__(
        self, fn: Callable[P, collections.abc.Coroutine[Any, Any, T]], /
    ) -> Activity[P, T]: ...
    @overload
    def __call__(self, fn: Callable[P, T], /) -> Activity[P, T]: ...


@overload
def activity(fn: Callable[P, collections.abc.Coroutine[Any, Any, T]], /) -> Activity[P, T]: ...
@overload
def activity(fn: Callable[P, T], /) -> Activity[P, T]: ...
@overload
def activity(
    *, attempts: int = 3, backoff: float = 0.1, multiplier: float = 2.0, max_backoff: float = 10.0
) -> _Decorator: ...
def activity(
    fn: Callable[P, Any] | None = None,
    /,
    *,
    attempts: int = 3,
    backoff: float = 0.1,
    multiplier: float = 2.0,
    max_backoff: float = 10.0,
) -> Activity[P, Any] | _Decorator:
    """Mark a module-level function as a workflow step, with its retry policy.

    Inside a workflow body a call yields to the engine, which runs the function (up to
    `attempts` times in all, waiting `backoff` seconds before the first retry and
    `multiplier` times longer before each next one) and records its result; the call
    returns that result, also when the body is replayed. If every attempt raised, the last
    exception is raised at the call. Outside a workflow, a call is a plain call.

    An ``async def`` function is an activity too: in the (synchronous) body, a call returns
    the coroutine's result, and each attempt runs on the worker process's one event loop
    (a daemon thread started on first use and kept, so clients made on it can be reused):

    >>> @activity(attempts=5)                                       # doctest: +SKIP
    ... async def fetch(url: str) -> int:
    ...     async with session.get(url) as r:   # a session made once, on that loop
    ...         return r.status
    >>> def check(url: str) -> bool:                                # the workflow
    ...     return fetch(url) == 200                                # fetch(url): int

    The arguments and the result must be encodable in durable state (builtins, or types
    registered with `coroutine.types.Register`), and the function must be found under its
    ``module:QualName`` by the worker that runs it.

    Raises:
        ValueError: `attempts` < 1 or a negative backoff.
        TypeError: `fn` is not a module-level function (a lambda or nested function has no
            name another process can find).
    """
    policy = RetryPolicy(attempts, backoff, multiplier, max_backoff)

    def wrap(f: Callable[P, Any]) -> Activity[P, Any]:
        if not callable(f) or "<" in getattr(f, "__qualname__", "<"):
            raise TypeError(
                f"@activity needs a module-level function (got {f!r}); define it with def at "
                "the top level of a module so every worker can find it by name"
            )
        return Activity(f, policy)

    return wrap(fn) if fn is not None else wrap  # type: ignore[return-value]


def idempotency_key() -> str:
    """The key of the workflow step whose activity is running: ``"<workflow id>:<step>"``.

    It is unique to the step and the same on every attempt and every re-run after a crash,
    so an external system that stores it with the effect can apply the effect once.

    Raises:
        NotInActivityError: called outside an activity run by a workflow engine.
    """
    try:
        return _KEY.get()
    except LookupError:
        raise NotInActivityError(
            "idempotency_key() is only known inside an activity that a workflow engine runs; "
            "a plain call of the activity (outside a workflow) has no step"
        ) from None


def find(name: str) -> Activity[..., Any]:
    """The activity registered under `name`; KeyError naming it if this process lacks it."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"activity {name!r} is not defined in this worker; import the module that defines "
            "it (workers import a workflow's module before running it)"
        ) from None


def run_activity(call: object, key: str, check: Callable[[], None] = lambda: None) -> Any:
    """Run `call` under its retry policy with `key` as its idempotency key, calling `check`
    before each attempt (it raises to stop: the claim was lost).

    Returns the activity's result; raises the exception of its last attempt, or TypeError
    if `call` is not an `ActivityCall` (the body called `Yield` itself), KeyError if no
    activity of that name is defined in this process.
    """
    if not isinstance(call, ActivityCall):
        raise TypeError(
            f"a workflow body yielded {call!r}, not an activity call; a workflow yields only "
            "by calling @activity functions (use them instead of Yield)"
        )
    act = find(call.name)
    token = _KEY.set(key)
    try:
        for attempt in range(1, act.retry.attempts + 1):
            check()
            try:
                return act.run(call.args, call.kwargs)
            except Exception:
                if attempt == act.retry.attempts:
                    raise
            time.sleep(act.retry.delay(attempt))
        raise AssertionError("unreachable: the last attempt returns or raises")
    finally:
        _KEY.reset(token)
