"""``coroutine.types``: how durable coroutines encode values."""

from collections.abc import Callable
from typing import Any, TypeVar

_T = TypeVar("_T")

def Register(
    cls: type[_T],
    encode: Callable[[_T], Any],
    decode: Callable[[Any], _T],
    *,
    name: str | None = None,
) -> None: ...
def RegisterPickle(cls: type, *, name: str | None = None) -> None: ...

__all__ = ["Register", "RegisterPickle"]
