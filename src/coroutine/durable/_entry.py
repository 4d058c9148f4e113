"""Durable entries: how another process finds a coroutine's body, and the program's fingerprint.

An entry is named by a reference (bytes): ``f`` and the module-level name of a function, ``c``
and the name of a classmethod, ``p`` and a name plus the encoded arguments of a
`functools.partial`, ``m`` and a name plus the encoded object of a method bound to an
instance of a registered type. Anything else (lambdas, closures, callable objects) cannot be
found by name in another process, and is refused with the reason (`Refusal`).

The fingerprint is BLAKE2b of the entry function's code: bytecode, names, constants
(recursively), defaults; not line numbers, so moving a function in its file keeps old states
valid, while editing it (or changing Python's minor version, which changes bytecode)
invalidates them. A coroutine created with ``version=`` is checked by that string instead,
and guards its edits with `Patched`.
"""

from __future__ import annotations

import functools
import sys
import types
from hashlib import blake2b
from typing import Any, NamedTuple

from . import _codec

__all__ = ["Entry", "Refusal", "entry", "fingerprint"]


class Refusal(Exception):
    """Why an entry cannot be recorded."""


class Entry(NamedTuple):
    """What a durable coroutine records about its entry."""

    ref: bytes  # how the state names it (compared on Unmarshal)
    desc: str  # how messages name it
    fp: bytes  # the fingerprint of its code
    func: types.FunctionType  # the function whose code runs
    args: tuple[Any, ...]  # what a ContinueAsNew successor replaces (a partial's arguments)
    keywords: dict[str, Any]


def _resolve(fn: Any) -> tuple[str, types.FunctionType]:
    """`module.qualname` of a module-level function (or a class's) and it; or `Refusal`."""
    if not isinstance(fn, types.FunctionType):
        kind = type(fn).__qualname__
        raise Refusal(f"it is a {kind}, not a Python function defined at module level")
    qual = fn.__qualname__
    if "<lambda>" in qual:
        raise Refusal("it is a lambda, which has no name to find it by in another process")
    if "<locals>" in qual:
        outer = qual.split(".<locals>", 1)[0]
        raise Refusal(
            f"it is defined inside {outer}() (a closure or nested function), so another "
            "process cannot find it, nor its captured variables"
        )
    obj: Any = sys.modules.get(fn.__module__)
    for part in qual.split("."):
        obj = getattr(obj, part, None)
    if obj is not fn:
        raise Refusal(
            f"the name {fn.__module__}.{qual} does not lead back to it (was it replaced?)"
        )
    return f"{fn.__module__}.{qual}", fn


def _encodable(what: str, value: object) -> bytes:
    try:
        return _codec.canonical(value)
    except _codec.EncodeError as exc:
        raise Refusal(f"{what} cannot be encoded: {exc}") from None


def entry(fn: Any) -> Entry:
    """The entry of a durable coroutine whose body is `fn`; `Refusal` saying why not."""
    if isinstance(fn, functools.partial):
        name, func = _resolve(fn.func)
        bound = _encodable("a partial's arguments", (fn.args, fn.keywords))
        shown = [_codec._short(a) for a in fn.args]
        shown += [f"{k}={_codec._short(v)}" for k, v in fn.keywords.items()]
        ref = b"p\0" + name.encode() + b"\0" + bound
        desc = f"functools.partial({name}, {', '.join(shown)})"
        return Entry(ref, desc, fingerprint(func), func, fn.args, dict(fn.keywords))
    if isinstance(fn, types.MethodType):
        name, func = _resolve(fn.__func__)
        owner = fn.__self__
        if isinstance(owner, type):  # a classmethod: found again by its name
            if getattr(owner, fn.__name__, None) != fn:
                raise Refusal(f"the classmethod {name} is not found on {owner.__qualname__}")
            return Entry(b"c\0" + name.encode(), name, fingerprint(func), func, (owner,), {})
        what = f"it is a method bound to a {type(owner).__qualname__} object, which"
        ref = b"m\0" + name.encode() + b"\0" + _encodable(what, owner)
        desc = f"{name} of {_codec._short(owner)}"
        return Entry(ref, desc, fingerprint(func), func, (owner,), {})
    name, func = _resolve(fn)
    return Entry(b"f\0" + name.encode(), name, fingerprint(func), func, (), {})


def _code_digest(code: types.CodeType, h: Any) -> None:
    h.update(code.co_code)
    shape = (code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount, code.co_flags)
    names = (code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars)
    h.update(repr((shape, names)).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _code_digest(const, h)
        else:
            _const_digest(const, h)


def _const_digest(const: object, h: Any) -> None:
    try:
        h.update(_codec.canonical(const))
    except _codec.EncodeError:
        try:
            text = repr(const)
        except Exception:  # an int over 4,300 digits has no repr
            text = "<no repr>"
        h.update(f"{type(const).__qualname__}:{text}".encode())


def fingerprint(fn: types.FunctionType) -> bytes:
    """The entry's fingerprint: a digest of its code, constants and defaults."""
    h = blake2b(digest_size=16)
    _code_digest(fn.__code__, h)
    for default in (fn.__defaults__ or ()) + tuple((fn.__kwdefaults__ or {}).items()):
        _const_digest(default, h)
    return h.digest()
