"""Type stubs for `coroutine`: what mypy and pyright read for the public API.

`Yield`, `LoadContext`, `New` and `NewWithReturn` are classes at runtime whose
``__class_getitem__`` returns a specialised function; here they are generic classes whose
``__new__`` returns the type the call produces, so ``Yield[int, str](v)`` checks `v` against
``int`` and is a ``str`` in mypy (>= 2.2, or any version with the ``coroutine.mypy`` plugin)
and in pyright. Type parameters default to ``Any``: ``New(fn)`` is ``New[Any, Any](fn)``.

``Coroutine[R, S, T]`` yields ``R``s (covariant), is sent ``S``s (contravariant) and returns a
``T`` (covariant) that defaults to ``None`` (PEP 696), so ``Coroutine[R, S]`` is what `New`
makes and ``NewWithReturn[R, S](fn)`` is a ``Coroutine[R, S, T]`` with ``T`` read from `fn`.
"""

from collections.abc import Awaitable, Callable
from typing import Any, Generic, Literal

from typing_extensions import Self, TypeVar

import coroutine

from ._typevars import R, S, T

__version__: str

_R = TypeVar("_R", default=Any)
_S = TypeVar("_S", default=Any)

_T = TypeVar("_T")

ACCELERATED: bool
Durable: bool
"""The default of ``durable=``: True iff COROUTINE_DURABLE=1 was set at import."""

class CoroutineError(Exception): ...
class NotInCoroutineError(CoroutineError): ...

class YieldTypeError(CoroutineError, TypeError):
    expected: Any
    got: Any
    site: str | None
    def __init__(
        self, message: str, expected: Any = None, got: Any = None, site: str | None = None
    ) -> None: ...

class ResumeError(CoroutineError, RuntimeError): ...
class StoppedError(CoroutineError): ...
class NotDurableError(CoroutineError): ...
class InvalidStateError(CoroutineError, ValueError): ...
class CoroutineExit(BaseException): ...

class Context(Generic[_R, _S]):
    """The state of one coroutine; made by the library, never by users."""

    def __new__(cls, *_: object, **__: object) -> Self: ...  # raises TypeError
    def Yield(self, v: _R, /) -> _S: ...
    def Marshal(self) -> bytes: ...
    def MarshalDelta(self) -> bytes: ...
    def Unmarshal(self, b: bytes, /) -> None: ...

class Coroutine(Generic[R, S, T]):
    """A body suspended at a `Yield`; made by `New` or `NewWithReturn`, never by users."""

    def __new__(cls, *_: object, **__: object) -> Self: ...  # raises TypeError
    def Next(self) -> bool: ...
    def Recv(self) -> R: ...
    def Send(self, v: S, /) -> None: ...
    def Result(self) -> T | None: ...
    def Stop(self) -> None: ...
    def Done(self) -> bool: ...
    # The class is named through the module: inside this class `Context` is the method.
    def Context(self) -> coroutine.Context[R, S]: ...
    @property
    def status(self) -> Literal["created", "suspended", "running", "normal", "done"]: ...
    def __iter__(self) -> Self: ...
    def __next__(self) -> R: ...
    # None primes a coroutine that has not started, as with a generator; StopIteration's
    # value is Result(), a T.
    def send(self, value: S | None, /) -> R: ...
    def throw(self, exc: BaseException | type[BaseException], /) -> R: ...
    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, *exc_info: object) -> None: ...
    def __del__(self) -> None: ...

class New(Coroutine[_R, _S, None]):
    """``New[R, S](fn)``: a coroutine that will run `fn()`; its return value is ignored."""

    def __new__(  # type: ignore[misc]  # the runtime returns a plain Coroutine
        cls,
        fn: Callable[[], object],
        /,
        *,
        durable: bool | None = None,
        version: str | None = None,
    ) -> Coroutine[_R, _S, None]: ...

class NewWithReturn(Coroutine[_R, _S, Any]):
    """``NewWithReturn[R, S](fn)``: like `New`, and `Result()` is `fn`'s return value, a `T`."""

    def __new__(  # type: ignore[misc]  # the runtime returns a plain Coroutine
        cls,
        fn: Callable[[], _T],
        /,
        *,
        durable: bool | None = None,
        version: str | None = None,
    ) -> Coroutine[_R, _S, _T]: ...

class Yield(Generic[_R, _S]):
    """``Yield[R, S](value)``: hand `value` (an `R`) to the driver; return what it sends."""

    def __new__(cls, value: _R, /) -> _S: ...  # type: ignore[misc]  # the call's type is S

class LoadContext(Generic[_R, _S]):
    """``LoadContext[R, S]()``: the `Context` of the innermost active coroutine."""

    def __new__(cls) -> Context[_R, _S]: ...  # type: ignore[misc]  # the active Context

def SideEffect(fn: Callable[[], _T], /) -> _T: ...
def Patched(change_id: str, /) -> bool: ...
def Current() -> Coroutine[Any, Any, Any] | None: ...

# R, S, T here too, so that checkers print "R@Run" in their messages. Both give the body's
# return value, a T: a body stopped before it returned raises StoppedError instead.
def Run(coro: Coroutine[R, S, T], fn: Callable[[R], S]) -> T: ...
async def RunAsync(coro: Coroutine[R, S, T], fn: Callable[[R], S | Awaitable[S]]) -> T: ...

__all__ = [
    "ACCELERATED",
    "Context",
    "Coroutine",
    "CoroutineError",
    "CoroutineExit",
    "Current",
    "Durable",
    "InvalidStateError",
    "LoadContext",
    "New",
    "NewWithReturn",
    "NotDurableError",
    "NotInCoroutineError",
    "Patched",
    "ResumeError",
    "Run",
    "RunAsync",
    "SideEffect",
    "StoppedError",
    "Yield",
    "YieldTypeError",
]
