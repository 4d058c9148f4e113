"""Creation: `New[R, S](fn)` and `NewWithReturn[R, S](fn)` make a `Coroutine`.

A subscription `New[R, S]` is answered from a cache of partial functions of `create`, one per
type pair. A durable coroutine (``durable=True``, ``version=``, or the `DURABLE` default) is
made durable by the durable layer, which the core does not import: `attach` is the layer's
entry point, hooked in by the package (`coroutine/__init__.py`) and loading the layer when
the first durable coroutine is made, so that ``import coroutine`` does not.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
from collections.abc import Callable
from contextvars import copy_context
from types import FunctionType
from typing import Any, NoReturn, Protocol, TypeVar

from ._context import Durability, new_context
from ._coroutine import Coroutine
from ._errors import internal_error
from ._signature import Signature, signature, type_params

__all__ = ["DURABLE", "Attach", "New", "NewWithReturn", "attach", "create"]

R = TypeVar("R")
S = TypeVar("S")
T = TypeVar("T")

DURABLE: bool = os.environ.get("COROUTINE_DURABLE", "") == "1"
"""The default of ``durable=``: True iff COROUTINE_DURABLE=1 was set at import (the compiled
`create` reads it in this module's dictionary at each call, as `create` does)."""


class Attach(Protocol):
    """The durable layer's entry point (`coroutine.durable._attach.attach`)."""

    def __call__(
        self, fn: Callable[[], Any], sig: Signature, *, explicit: bool, version: str | None
    ) -> tuple[Durability, Callable[[], Any]]:
        """The durability hooks of a new coroutine with entry `fn`, and the body it runs."""
        ...


def _unhooked(
    fn: Callable[[], Any], sig: Signature, *, explicit: bool, version: str | None
) -> NoReturn:
    raise internal_error("a durable coroutine was made before the durable layer was hooked in")


attach: Attach = _unhooked
"""Make a new coroutine durable: set by the package to `coroutine._durability.attach`, which
imports the durable layer on its first call."""


def create(
    sig: Signature,
    with_return: bool,
    fn: Callable[[], Any],
    /,
    *,
    durable: bool | None = None,
    version: str | None = None,
) -> Coroutine[Any, Any, Any]:
    """A new coroutine of `sig` running `fn` (the function behind `New[R, S]` and
    `NewWithReturn[R, S]`, with their arguments and exceptions)."""
    code = fn.__code__ if type(fn) is FunctionType else None
    if code is None or code.co_argcount or code.co_kwonlyargcount:  # else it would pass: no call
        _check_entry(fn, with_return)
    coro: Coroutine[Any, Any, Any] = object.__new__(Coroutine)
    coro._g = None  # first: __del__ reads it
    coro._fn = coro._body = fn
    coro._with_return = with_return
    ctx = coro._ctx = new_context(sig, coro, copy_context())
    if durable or (durable is None and (DURABLE or version is not None)):
        ctx._durable, coro._body = attach(
            fn, sig, explicit=bool(durable) or version is not None, version=version
        )
    return coro


def _check_entry(fn: Callable[[], Any], with_return: bool) -> None:
    """Refuse, at creation, a body that is not a function of no arguments.

    Only plain functions and partials of them are looked into (a code object's counts, so
    it costs next to nothing); other callables are trusted.
    """
    kind = "NewWithReturn" if with_return else "New"
    if type(fn) is FunctionType:
        code = fn.__code__
        needs = code.co_argcount - len(fn.__defaults__ or ())
        needs += code.co_kwonlyargcount - len(fn.__kwdefaults__ or {})
        if needs <= 0:
            return
    elif type(fn) is functools.partial:
        try:
            inspect.signature(fn).bind()
            return
        except TypeError:  # it needs arguments
            pass
        except ValueError:  # no signature to read (a builtin): trust it
            return
    elif callable(fn):
        return
    what = "not callable" if not callable(fn) else "a function that needs arguments"
    raise TypeError(
        f"{kind} takes the body as a function of no arguments, got {fn!r} ({what}); write "
        f"{kind}[R, S](fn), or wrap arguments with functools.partial or a lambda"
    )


_bind: Callable[..., Callable[..., Coroutine[Any, Any, Any]]] = functools.partial
"""How a factory binds `create` to its signature: ``functools.partial``; the accelerator puts
its compiled equivalent in place (`_speedups.Factory`), which calls the compiled `create`
without partial's second call."""

_ANY = signature(Any, Any)
_factories: dict[tuple[object, bool], Callable[..., Coroutine[Any, Any, Any]]] = {}


def _factory(item: Any, with_return: bool, name: str) -> Callable[..., Coroutine[Any, Any, Any]]:
    try:
        return _factories[item, with_return]
    except (KeyError, TypeError):
        pass
    made = _bind(create, signature(*type_params(item, name)), with_return)
    with contextlib.suppress(TypeError):  # unhashable type forms are not cached
        _factories[item, with_return] = made
    return made


class _Subscripted(type):
    """The class of `New` and `NewWithReturn`: ``New[R, S]`` is answered by the class's
    `__class_getitem__`. A metaclass's `__getitem__` is what a subscription of a class calls
    first, with no attribute lookup on the class: so the accelerator's identity cache sits
    here (`_accel`), in front of this function."""

    def __getitem__(cls, item: Any) -> Any:
        return cls.__class_getitem__(item)  # type: ignore[attr-defined]


class New(Coroutine[R, S, None], metaclass=_Subscripted):
    """``New[R, S](fn)``: a coroutine that will run `fn()` as its body; nothing runs yet.

    `fn` may call ``Yield[R, S](v)`` anywhere down its call stack. Its return value is
    ignored (see `NewWithReturn`). ``New(fn)`` is ``New[Any, Any](fn)``.

    Args:
        fn: the body, a function of no arguments.
        durable: record the coroutine so it can be marshalled (see docs/how-to/durable.md); None
            means the `coroutine.Durable` default.
        version: the durable program version the state records (implies durable).

    Raises:
        TypeError: `fn` is not a function of no arguments.
        NotDurableError: ``durable=True`` and `fn` cannot be recorded.
    """

    __slots__ = ()

    def __class_getitem__(cls, item: Any) -> Any:
        return _factory(item, False, "New")

    def __new__(
        cls,
        fn: Callable[[], object],
        /,
        *,
        durable: bool | None = None,
        version: str | None = None,
    ) -> Any:
        return create(_ANY, False, fn, durable=durable, version=version)


class NewWithReturn(Coroutine[R, S, T], metaclass=_Subscripted):
    """``NewWithReturn[R, S](fn)``: like `New`, and `Result()` is `fn`'s return value.

    Raises:
        TypeError: `fn` is not a function of no arguments.
        NotDurableError: ``durable=True`` and `fn` cannot be recorded.
    """

    __slots__ = ()

    def __class_getitem__(cls, item: Any) -> Any:
        return _factory(item, True, "NewWithReturn")

    def __new__(
        cls,
        fn: Callable[[], T],
        /,
        *,
        durable: bool | None = None,
        version: str | None = None,
    ) -> Any:
        return create(_ANY, True, fn, durable=durable, version=version)
