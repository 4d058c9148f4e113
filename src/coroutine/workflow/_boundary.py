"""What crosses the durable boundary between a workflow body and its activities.

A workflow's history records what its body was given: each activity's result, or the
exception thrown in at the call. A worker that replays the history gives the body the
recorded values again, and a result or an exception that would come back different on
replay would make a body that ran one way on its first worker run another way on the next.
So, before anything crosses:

* an activity's arguments are checked as recordable at the call, in the body, before the
  activity runs (`check_recordable`): a value that cannot be recorded is a `TypeError`
  raised at the call, on every worker alike;
* an exception that the replay would not rebuild the same (its class keeps state outside
  ``args``, its arguments cannot be recorded, its class is local to a function) is replaced
  by one `ActivityError` naming it (`stand_in`), live and on replay alike.

The check uses the durable layer's own encoder and exception rebuild, so it agrees with
what the history will hold.
"""

from __future__ import annotations

import traceback
from typing import Any

from coroutine.durable import _codec, _log

from ._errors import ActivityError

__all__ = ["check_args", "check_recordable", "detach", "stand_in"]

_PLAIN = (
    "pass plain data (None, bool, int, float, str, bytes, list, tuple, dict, set, frozenset) "
    "or register the type with coroutine.types.Register"
)


SCALARS = frozenset({int, str, float, bool, type(None), bytes})


def _plain(v: Any, depth: int = 0) -> bool:
    """Whether `v` is surely recordable: builtin scalars in shallow tuples, lists and dicts
    (the common case, checked without encoding it)."""
    t = type(v)
    if t in SCALARS:
        return True
    if depth > 3:
        return False
    if t is tuple or t is list:
        return all(_plain(x, depth + 1) for x in v)
    if t is dict:
        return all(type(k) in SCALARS and _plain(x, depth + 1) for k, x in v.items())
    return False


def check_recordable(value: Any, what: str) -> None:
    """Raise TypeError, naming `what`, if `value` cannot be recorded in a durable state."""
    if type(value) in SCALARS or _plain(value):
        return
    try:
        _codec.encode(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise TypeError(
            f"{what} cannot be recorded in the workflow's history ({exc}); {_PLAIN}"
        ) from None


def check_args(args: tuple[Any, ...], kwargs: dict[str, Any], what: str) -> None:
    """`check_recordable` of a call's arguments, with a fast path for scalars alone."""
    for a in args:
        if type(a) not in SCALARS:
            break
    else:
        if not kwargs:
            return
    check_recordable((args, kwargs), what)


def _faithful(exc: BaseException) -> bool:
    """Whether a replay rebuilds `exc` as the same class with the same args, state and str."""
    try:
        again = _log.rebuild(_log.exc_spec(exc))
        return (
            type(again) is type(exc)
            and again.args == exc.args
            and getattr(again, "__dict__", {}) == getattr(exc, "__dict__", {})
            and str(again) == str(exc)
        )
    except Exception:
        return False


def stand_in(exc: Exception) -> Exception:
    """`exc` itself if the history rebuilds it faithfully, else an `ActivityError` naming its
    type and message and carrying its traceback text."""
    if _faithful(exc):
        return exc
    cls = type(exc)
    try:
        message = str(exc)
    except Exception as err:
        message = f"<str() failed: {err!r}>"
    tb = "".join(traceback.format_exception(cls, exc, exc.__traceback__))[-20000:]
    return ActivityError(f"{cls.__module__}.{cls.__qualname__}", message, tb)


def detach(exc: BaseException) -> None:
    """Drop the tracebacks of `exc` and the exceptions chained to it, before it is thrown into
    a body.

    A traceback's frames reach, through ``f_back``, the worker frame that holds the
    coroutine; a body suspended while it keeps the exception (an activity called in its
    ``except`` block) would then be part of a cycle through its greenlet, which the collector
    cannot break. A replay gives the body the exception without a traceback anyway (the
    stand-in keeps the text).
    """
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        e.__traceback__ = None
        todo += [e.__cause__, e.__context__]
