"""Control how durable coroutines encode values: ``coroutine.types``.

The state of a durable coroutine (see ``New(fn, durable=True)``) holds the values sent to it,
digests of the values it yields, and what `coroutine.SideEffect` returned. By default these
may be ``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes``, ``list``, ``tuple``,
``dict``, ``set`` and ``frozenset`` (those exact types), and decoding them runs no code.
Other types are added here, one class at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from .durable import _codec

__all__ = ["Register", "RegisterPickle"]

T = TypeVar("T")


def Register(
    cls: type[T],
    encode: Callable[[T], Any],
    decode: Callable[[Any], T],
    *,
    name: str | None = None,
) -> None:
    """Let durable state hold instances of exactly `cls`, as ``encode(obj)``.

    `encode` turns an instance into encodable values (builtins or other registered types);
    `decode` turns them back. The state names the type by `name` (default
    ``"module.QualName"``), so a rename breaks old states unless the old name is passed.
    Subclasses are not covered: register each. Registering `cls` again replaces it.

    >>> from dataclasses import dataclass
    >>> from coroutine.types import Register
    >>> @dataclass
    ... class Point:
    ...     x: int
    ...     y: int
    >>> Register(Point, lambda p: (p.x, p.y), lambda t: Point(*t))

    Raises:
        TypeError: `cls` is not a class or is a builtin the codec already encodes, or
            `encode`/`decode` are not callable.
        ValueError: `name` is registered for another class.
    """
    _codec.register(cls, encode, decode, name)


def RegisterPickle(cls: type, *, name: str | None = None) -> None:
    """Let durable state hold instances of exactly `cls`, encoded with `pickle`.

    .. warning:: Unsafe for untrusted bytes. Decoding a pickle can run any code the bytes
       ask for. The state's checksum detects accidents, not tampering: only unmarshal states
       from storage you trust, or use `Register` instead.

    Pickles are decoded only for names registered with `RegisterPickle` in the process
    that unmarshals; with no such registration, a pickle in the bytes is refused
    (`InvalidStateError`) without being read.

    >>> from coroutine.types import RegisterPickle
    >>> class Session:  # say, a third-party object with no field-wise encoding
    ...     pass
    >>> RegisterPickle(Session, name="example.Session")

    Raises:
        TypeError: `cls` is not a class or is a builtin the codec already encodes.
        ValueError: `name` is registered for another class.
    """
    _codec.register_pickle(cls, name)
