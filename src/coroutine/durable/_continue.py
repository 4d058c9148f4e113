"""`ContinueAsNew`: end a long-lived durable coroutine and start its successor."""

from __future__ import annotations

import functools
from typing import Any

from .._context import CURRENT
from .._errors import CoroutineError, NotInCoroutineError
from . import _codec
from ._recorder import Recorder

__all__ = ["ContinueAsNew"]


class ContinueAsNew(CoroutineError):
    """Raised by a durable body to end its coroutine, so that its driver starts a successor:
    the same entry, called with new arguments, with an empty history.

    A durable state grows with every step; a coroutine meant to run for ever (a loop over
    days of events) instead carries what it needs over to a fresh run now and then:

    .. code-block:: python

        def account(balance: int = 0, seen: int = 0) -> None:
            while seen < 1000:
                balance += Yield[int, int](balance)
                seen += 1
            raise ContinueAsNew(balance)           # account(balance), from seen=0

    and the driver:

    .. code-block:: python

        try:
            coroutine.Run(coro, answer)
        except ContinueAsNew as c:
            coro = c.successor()                   # New[R, S](partial(account, balance), ...)

    The successor has the coroutine's types, ``version=`` and kind (`NewWithReturn` or
    `New`); its entry is the original function with the new arguments (a partial's own
    arguments, and the object of a bound method, are replaced by them: pass them again).

    Raises:
        NotInCoroutineError: raised outside the body of a durable coroutine.
        NotDurableError: from `successor`, when the new arguments cannot be encoded.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        ctx = CURRENT.get()
        rec = None if ctx is None else ctx._durable
        if ctx is None or not isinstance(rec, Recorder):
            raise NotInCoroutineError(
                "ContinueAsNew is raised inside the body of a durable coroutine, to end it "
                "and start its successor; this code runs in no durable coroutine"
            )
        coro = ctx._coro()
        self.func = rec.entry.func  #: the entry function the successor runs
        self.arguments = args  #: what the successor's entry is called with
        self.keywords = kwargs
        self.version = rec.version  #: the successor's version=
        self._sig = ctx._sig
        self._with_return = bool(getattr(coro, "_with_return", False))
        shown = [_codec._short(a) for a in args] + [
            f"{k}={_codec._short(v)}" for k, v in kwargs.items()
        ]
        super().__init__(
            f"{self.func.__qualname__} continues as new with ({', '.join(shown)}): catch "
            "ContinueAsNew in the driver and run its successor()"
        )

    def successor(self) -> Any:
        """A new durable coroutine running the entry with the carried-over arguments."""
        from .._new import create

        args, kwargs = self.arguments, self.keywords
        fn = functools.partial(self.func, *args, **kwargs) if args or kwargs else self.func
        return create(self._sig, self._with_return, fn, durable=True, version=self.version)
