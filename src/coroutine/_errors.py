"""Every exception the library raises, each refining the builtin it is closest to.

Errors raised for a caller's mistake say what was wrong and what to do; the parts a program
may want to inspect (expected types, the offending value, the yield site) are attributes, so
nobody has to parse a message.
"""

from __future__ import annotations

import os
import sys
from types import TracebackType
from typing import Any

__all__ = [
    "CoroutineError",
    "CoroutineExit",
    "InvalidStateError",
    "NotDurableError",
    "NotInCoroutineError",
    "ResumeError",
    "StoppedError",
    "YieldTypeError",
]


class CoroutineError(Exception):
    """Base class of the library's errors (all but `CoroutineExit`)."""


class NotInCoroutineError(CoroutineError):
    """`Yield` or `LoadContext` was called with no coroutine active on this thread.

    Raised also in a thread started from inside a coroutine's body: a coroutine's
    yields can only be reached from the thread and greenlet that run its body.
    """


class YieldTypeError(CoroutineError, TypeError):
    """A yield or send does not fit the coroutine's declared types.

    Raised at the yield point when `Yield[R2, S2]` is incompatible with the coroutine's
    `[R, S]` or the yielded value is not an `R2`; raised in the driver by `Send` (and by
    `Run`/`send`) when the sent value is not an `S`.

    Attributes:
        expected: the type form the value had to match (or the coroutine's `(R, S)` pair).
        got: the offending value, or the yield site's `(R2, S2)` pair.
        site: ``"file:line"`` of the yield site when known, else ``None``.
    """

    def __init__(
        self, message: str, expected: Any = None, got: Any = None, site: str | None = None
    ) -> None:
        super().__init__(message)
        self.expected = expected
        self.got = got
        self.site = site


class ResumeError(CoroutineError, RuntimeError):
    """A coroutine was driven when it cannot be.

    Raised when resuming a coroutine that is running or ``normal`` (it is itself resuming
    another), when driving it from a thread other than the one that created it, and by the
    `Next` during which a stopped coroutine tried to yield again.
    """


class StoppedError(CoroutineError):
    """`Run` drove a body that was stopped before it returned, so there is no result.

    A stop (`Stop`, `close`, a `throw` into a coroutine that never started, or `Run`'s
    callback stopping the coroutine) unwinds the body, which then has no return value;
    `Run` is typed as returning ``T`` and raises this instead of returning None, once the
    body is unwound (the coroutine is done). Drive Go-style (`Next`, then `Result()`, which
    stays ``T | None``) where a stop is an expected outcome.
    """


class NotDurableError(CoroutineError):
    """`Marshal`/`Unmarshal` on a volatile coroutine, or `durable=True` with an entry that
    cannot be recorded (a lambda, a closure, a bound method...)."""


class InvalidStateError(CoroutineError, ValueError):
    """Bytes given to `Unmarshal` cannot be restored, or a replay diverged from its record."""


class CoroutineExit(BaseException):
    """Thrown at the yield point by `Stop`/`close` and by garbage collection, like
    `GeneratorExit`: it unwinds the body, running its ``finally`` blocks and ``with`` exits.

    A body may catch it to clean up, but must not yield again afterwards.
    """


def not_copyable(kind: str) -> TypeError:
    """The error for pickling or copying a `kind` ("Coroutine" or "Context"): a body
    suspended on a greenlet's stack can be neither saved nor shared."""
    return TypeError(
        f"cannot pickle or copy a {kind}: a coroutine's body runs on a greenlet's stack, "
        "which can be neither saved nor copied; to save or duplicate a durable coroutine, "
        "take state = coro.Context().Marshal() and restore it with "
        "New[R, S](fn, durable=True).Context().Unmarshal(state)"
    )


def internal_error(what: str) -> CoroutineError:
    """An error that can only come from a bug in this library."""
    return CoroutineError(
        f"internal error in coroutine: {what}. This is a bug in the library; please "
        "report it with this traceback"
    )


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def user_site() -> str | None:
    """``"file:line"`` of the innermost frame outside this package (where the user's yield
    is), for the `site` of an error; None if every frame is the library's."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame = frame.f_back  # type: ignore[assignment]
    return None if frame is None else f"{frame.f_code.co_filename}:{frame.f_lineno}"


_WORKFLOW = _PACKAGE + "workflow" + os.sep  # an engine above the core, not its machinery


def _is_library(tb: TracebackType) -> bool:
    name = tb.tb_frame.f_code.co_filename
    return name.startswith(_PACKAGE) and not name.startswith(_WORKFLOW)


def trimmed(exc: BaseException) -> BaseException:
    """`exc`, with every frame of this library taken out of its traceback (in place).

    An exception leaving the library then reads like a generator's: the line that drove the
    coroutine, then the body's frames, as though the body ran in the caller's stack. Frames
    of the library between two of the user's (a `Run` inside a body, a yield's machinery
    under a thrown-in exception) go too: the compiled implementation has none to show.
    Chained exceptions (``__context__``, ``__cause__``) keep theirs: they say what the
    library was doing when the first one happened.

    A compiled entry point calls it on its way out (being C, it has no frame to show); a
    Python one calls `trim_handled`, which takes out its own frame too.
    """
    first = tb = exc.__traceback__
    while tb is not None and _is_library(tb):
        tb = tb.tb_next
    head = kept = tb
    while kept is not None:
        after = kept.tb_next
        while after is not None and _is_library(after):
            after = after.tb_next
        if kept.tb_next is not after:
            kept.tb_next = after
        kept = after
    if first is not head:
        exc.__traceback__ = head
    return exc


def trim_handled(exc: BaseException) -> None:
    """`trimmed(exc)`, in the ``except`` block of a Python entry point that then re-raises
    `exc` with a bare ``raise``, which adds no traceback entry: so `exc` leaves with no frame
    of the library, the entry point's own included.

    Python 3.11+ re-raises `exc` with its ``__traceback__``. 3.10 re-raises with the handled
    exception's traceback as stored when it was caught, whose first entry is the catching
    frame's own: there the stored one is set to the trimmed one too (`_set_handled`). Without
    ctypes, the catching frame's entry stays, linked to the first entry kept.
    """
    if sys.version_info >= (3, 11):
        trimmed(exc)
        return
    caught = exc.__traceback__
    head = trimmed(exc).__traceback__
    if caught is not head and not _set_handled(exc, head) and caught is not None:
        caught.tb_next = head


_set_exc_info: Any = None  # at its first use (3.10 only): `_exc_info_setter()`


def _set_handled(exc: BaseException, tb: TracebackType | None) -> bool:
    """Whether the traceback stored for `exc`, the exception being handled, was set to `tb`;
    False without ctypes."""
    global _set_exc_info
    if _set_exc_info is None:
        _set_exc_info = _exc_info_setter()
    if not _set_exc_info or sys.exc_info()[1] is not exc:
        return False
    _set_exc_info(type(exc), exc, tb)
    return True


def _exc_info_setter() -> Any:
    """``set(type, value, tb)``, which sets the handled exception (what `sys.exc_info`
    returns, and a bare ``raise`` re-raises) through the C API's ``PyErr_SetExcInfo``; False
    if ctypes is missing. Imported at the first use, so that importing the library does not
    import ctypes.

    ``PyErr_SetExcInfo`` steals a reference to each argument: ``Py_NewRef`` makes them, as the
    call unpacks its arguments, so no Python code runs between (an exception from a signal
    handler cannot come between and leak them).
    """
    try:
        import ctypes

        api, ptr, obj = ctypes.pythonapi, ctypes.c_void_p, ctypes.py_object
        new_ref = ctypes.PYFUNCTYPE(ptr, obj)(("Py_NewRef", api))
        steal = ctypes.PYFUNCTYPE(None, ptr, ptr, ptr)(("PyErr_SetExcInfo", api))
    except (ImportError, AttributeError):  # no ctypes, or no such function
        return False
    return lambda *exc_info: steal(*map(new_ref, exc_info))
