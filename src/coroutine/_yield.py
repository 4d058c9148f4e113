"""`Yield`, `LoadContext` and `Current`: how code in a body finds its coroutine and yields.

`Yield[R2, S2]` is a dict lookup that returns a function specialised to that site signature;
the function applies the type rule and switches out through `_context.switch_out` (or, for a
durable coroutine, through its durability hooks): this is the library's hot path. With the
extension loaded, `_accel` puts compiled forms in place of `site_function` (a yield site that
runs `switch_out`'s common case in C) and of the `Yield` table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ._context import CURRENT, Context, switch_out
from ._errors import NotInCoroutineError, user_site
from ._signature import Signature, bad_value, signature, type_params

if TYPE_CHECKING:
    from ._coroutine import Coroutine

__all__ = ["Current", "LoadContext", "Yield", "YieldTable", "make_yield", "site_function"]

R = TypeVar("R")
S = TypeVar("S")

_current = CURRENT.get


def _not_in_coroutine(what: str) -> NotInCoroutineError:
    return NotInCoroutineError(
        f"{what} called with no active coroutine: call it from code running inside a body "
        "started with New[R, S](fn) (threads started inside a body do not count)"
    )


def make_yield(site: Signature) -> Callable[[Any], Any]:
    """The function `Yield[R2, S2]` stands for, specialised to one site signature."""
    self_rule = site.self_rule
    self_check = self_rule.check
    rules = site.rules

    def yield_(value: Any, /) -> Any:
        ctx = _current()
        if ctx is None:
            raise _not_in_coroutine("Yield")
        sig = ctx._sig
        if sig is site:
            rule = self_rule
            check = self_check
        else:
            rule = rules.get(sig) or site.rule_in(sig, user_site())
            check = rule.check
        if check is not None and not check(value):
            raise bad_value(value, site, sig)
        if ctx._durable is not None:
            return ctx._durable.on_yield(ctx, value, rule)
        return switch_out(ctx, value, rule)

    yield_.__qualname__ = yield_.__name__ = f"Yield{site}"
    return yield_


site_function: Callable[[Signature], Callable[[Any], Any]] = make_yield
"""The function behind `Yield[R2, S2]` for a site signature: `make_yield`, or with the
extension loaded, a compiled yield site in front of it (set by `_accel`)."""


class YieldTable(dict[Any, Callable[[Any], Any]]):
    """``Yield[R, S](value)``: suspend the innermost active coroutine, handing it `value`.

    Returns what the driver sends back (an `S`). The active coroutine is found through a
    context variable, so any function down the body's call stack may yield, through C code
    such as ``sorted(key=...)`` included.

    >>> from coroutine import New, Yield
    >>> def body() -> None:
    ...     for i in range(3):
    ...         Yield[int, None](i)
    >>> list(New[int, None](body))
    [0, 1, 2]

    Raises:
        NotInCoroutineError: no coroutine is active on this thread and greenlet.
        YieldTypeError: ``[R, S]`` does not fit the coroutine's types (R must be a subtype of
            the coroutine's R, and its S of ours), `value` is not an `R`, or the coroutine was
            resumed with nothing sent and `S` does not admit None.
        CoroutineExit: the driver stopped the coroutine while it was suspended here.

    Type arguments must be hashable (they are, but for ``Annotated`` with unhashable
    metadata); the lookup is a plain dict subscription, the cheapest Python offers.
    """

    __slots__ = ()

    def __missing__(self, item: Any) -> Callable[[Any], Any]:
        r, s = type_params(item, "Yield")
        fn = self[item] = site_function(signature(r, s))
        return fn

    def __call__(self, value: Any, /) -> Any:
        return _yield_any(value)

    def __repr__(self) -> str:
        return "coroutine.Yield"


# Yield is a dict from type pairs to specialised yield functions, not a class: `Yield[R, S]`
# runs on every yield, and a dict subscription costs half a `__class_getitem__` call.
# Type checkers read it as the generic class declared in stubs/.
Yield = YieldTable()

_yield_any = make_yield(signature(Any, Any))


class LoadContext(Generic[R, S]):
    """``LoadContext[R, S]()``: the `Context` of the innermost active coroutine.

    It is the same object as that coroutine's ``Context()``. The pair ``[R, S]`` must fit
    the coroutine's types by the same rule as `Yield`.

    Raises:
        NotInCoroutineError: no coroutine is active.
        YieldTypeError: ``[R, S]`` does not fit the coroutine's types.
    """

    def __class_getitem__(cls, item: Any) -> Any:
        r, s = type_params(item, "LoadContext")
        site = signature(r, s)

        def load() -> Context[Any, Any]:
            return _load(site)

        return load

    def __new__(cls) -> Any:
        return _load(None)


def _load(site: Signature | None) -> Context[Any, Any]:
    ctx = _current()
    if ctx is None:
        raise _not_in_coroutine("LoadContext")
    if site is not None and site is not ctx._sig:
        site.rule_in(ctx._sig, user_site())
    return ctx


def Current() -> Coroutine[Any, Any, Any] | None:
    """The innermost active coroutine on this thread, or None outside any body.

    >>> from coroutine import Current, New
    >>> Current() is None
    True
    """
    ctx = _current()
    return None if ctx is None else ctx._coro()
