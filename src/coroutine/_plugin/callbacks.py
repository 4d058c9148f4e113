"""Callbacks: the classes and instances a call hands on count as called from its caller.

Push-style APIs run user code from inside the call: ``xml.sax.parseString(data, handler)``
calls ``handler.startElement``, ``con.create_aggregate("f", 1, Agg)`` builds an ``Agg`` and
calls its ``step`` and ``finalize``. A function or bound method passed on is already an edge
(`walk.py` treats every reference to a function as a possible call); this module adds, for a
class or an instance of a class outside the stubs passed as an argument, the methods the
receiving API may call on it, as edges from the caller *via* the API (so that the path in an
error reads ``main.body -> xml.sax.parseString -> main.Tags.startElement``):

* an API whose body mypy does not show (defined in a stub, as the standard library is, or in
  an installed package): the methods of the parameter's declared type that the object's
  class defines or overrides (``ContentHandler``'s for `parseString`'s handler; for a
  ``Callable[[], P]`` parameter given a class, the methods of ``P``; for a ``Callable`` given
  an instance, its ``__call__``). A parameter of type ``Any`` says nothing: every method;
* an API in the code mypy checks: nothing more when the parameter is declared as a class the
  object derives from by name, as its body is followed and calls through the parameter are
  dispatches (`walk.py`); otherwise (a protocol it implements without naming it, ``object``,
  a union, no annotation) every method the object's class defines outside the stubs;
* a callee not known before mypy infers types (a method of a variable it infers): every
  method.

A class passed on also counts as built (its constructors). An object only declared as its
class (a parameter ``h: Handler``) may be a subclass: each method is then also a dispatch, so
the overrides count too. Objects inside containers (``[Handler()]``) are not followed.

The arguments of `coroutine.aio.await_` and `run_sync` are not callbacks of the coroutine:
the awaitable runs in the event loop's task, the function in `run_sync`'s own body.
"""

from __future__ import annotations

from collections.abc import Callable

from mypy.nodes import (
    ARG_STAR,
    ARG_STAR2,
    CallExpr,
    Decorator,
    Expression,
    FuncBase,
    FuncDef,
    MemberExpr,
    Node,
    OverloadedFuncDef,
    RefExpr,
    TypeInfo,
)
from mypy.types import (
    AnyType,
    CallableType,
    Instance,
    TupleType,
    Type,
    TypeOfAny,
    TypeType,
    TypeVarType,
    UnionType,
    get_proper_type,
)

from .classes import Scope, constructors, fullname_of, signatures

# Calls whose arguments run elsewhere (SPEC §8): never callbacks of the calling coroutine.
AIO_NAMES = frozenset({"coroutine.aio.await_", "coroutine.aio.run_sync"})
# Called on the class, never on instances handed on.
_CONSTRUCTION = frozenset({"__init__", "__new__", "__init_subclass__", "__class_getitem__"})

# The method names an API may call on an object, per argument; None: any method it defines.
Wanted = frozenset[str] | None


class Passed:
    """A class or instance of a class outside the stubs passed as an argument."""

    __slots__ = ("declared", "info", "is_class")

    def __init__(self, info: TypeInfo, declared: bool, is_class: bool) -> None:
        self.info = info
        self.declared = declared  # only declared: may be an instance of a subclass
        self.is_class = is_class  # the class itself, not an instance


def call_callbacks(call: CallExpr, scope: Scope, add: Callable[[str, str, bool], None]) -> None:
    """Report, with ``add(fullname, via, is_dispatch)``, the methods that `call` may run of the
    classes and instances passed to it; `via` is the API's name."""
    passed = {i: p for i, a in enumerate(call.args) if (p := _passed(call, i, a, scope))}
    if not passed:
        return
    node, bound = _callee(call.callee, scope)
    via = _name(call.callee) if node is None or _is_class(call.callee) else fullname_of(node)
    wanted = _wanted(call, node, bound, scope, passed)
    for i, p in passed.items():
        if p.is_class:
            for init in constructors(p.info):
                add(init, via, False)
        for name in _methods(p, wanted.get(i), scope):
            method = p.info.get(name)
            if method is None or not isinstance(method.node, (FuncBase, Decorator)):
                continue
            fullname = fullname_of(method.node)
            if not scope.in_stub(fullname):
                add(fullname, via, False)
            if p.declared:  # a subclass's override may answer
                add(f"{p.info.fullname}.{name}", via, True)


def _passed(call: CallExpr, i: int, arg: Expression, scope: Scope) -> Passed | None:
    if call.arg_kinds[i] in (ARG_STAR, ARG_STAR2):
        return None
    if isinstance(arg, RefExpr) and isinstance(arg.node, TypeInfo):
        p = Passed(arg.node, False, True)  # the class itself
    else:
        info, declared = scope.receiver(arg)
        if info is None:
            return None
        p = Passed(info, declared, False)
    return None if scope.in_stub(p.info.fullname) else p


def _wanted(
    call: CallExpr,
    node: FuncBase | Decorator | None,
    bound: bool,
    scope: Scope,
    passed: dict[int, Passed],
) -> dict[int, Wanted]:
    """For each argument in `passed`, the methods the callee may call on it (absent: any)."""
    if node is None:
        return {}
    opaque = scope.opaque(fullname_of(node))
    # Not at the top: compiled mypy's mypy.argmap cannot be imported before mypy.types.
    from mypy.argmap import map_actuals_to_formals

    found: dict[int, set[str] | None] = {}
    for sig in signatures(node):  # an overloaded callee: what any of its signatures says
        if bound and sig.arg_types:
            sig = sig.copy_modified(
                arg_types=sig.arg_types[1:],
                arg_kinds=sig.arg_kinds[1:],
                arg_names=sig.arg_names[1:],
            )
        formals = map_actuals_to_formals(
            call.arg_kinds,
            call.arg_names,
            sig.arg_kinds,
            sig.arg_names,
            lambda _: AnyType(TypeOfAny.special_form),
        )
        for formal, actuals in enumerate(formals):
            for i in set(actuals) & set(passed):
                t, p = sig.arg_types[formal], passed[i]
                if opaque:
                    names = _names(t, p.is_class)
                else:
                    names = set() if _derives(p.info, t, p.is_class) else None
                before = found.get(i, set())
                found[i] = None if names is None or before is None else before | names
    return {i: frozenset(names) for i, names in found.items() if names is not None}


def _derives(info: TypeInfo, t: Type, is_class: bool) -> bool:
    """Whether a parameter declared as `t` names a class that `info` derives from (for a class
    passed on: ``type[C]``), so that calls through it in the body are dispatches."""
    p = get_proper_type(t)
    if isinstance(p, TypeVarType):
        p = get_proper_type(p.upper_bound)
    if is_class:
        if not isinstance(p, TypeType):
            return False
        p = get_proper_type(p.item)
    if not isinstance(p, Instance) or p.type.fullname == "builtins.object":
        return False
    return any(base.fullname == p.type.fullname for base in info.mro)


def _callee(callee: Expression, scope: Scope) -> tuple[FuncBase | Decorator | None, bool]:
    """The function a call runs, and whether it is bound (its first parameter is filled)."""
    node: Node | None = None
    bound = False
    if isinstance(callee, RefExpr) and isinstance(callee.node, TypeInfo):
        node, bound = _constructor(callee.node), True  # `self` (or `cls`) filled
    elif isinstance(callee, RefExpr) and callee.node is not None:
        node = callee.node  # a function, or one of a module
    elif isinstance(callee, MemberExpr):
        info, _ = scope.receiver(callee.expr)
        method = info.get(callee.name) if info is not None else None
        node = method.node if method is not None else None
        func = node.func if isinstance(node, Decorator) else node
        through_class = _is_class(callee.expr)
        if isinstance(func, (FuncDef, OverloadedFuncDef)) and not func.is_static:
            bound = func.is_class or not through_class  # C.method(obj) fills `self` itself
    if not isinstance(node, (FuncBase, Decorator)):
        return None, False
    return node, bound


def _constructor(info: TypeInfo) -> Node | None:
    """The ``__init__`` that building a `info` runs, or its ``__new__`` if it has only that."""
    init, new = info.get("__init__"), info.get("__new__")
    if init is not None and init.node is not None and init.fullname != "builtins.object.__init__":
        return init.node
    return new.node if new is not None else None


def _is_class(e: Expression) -> bool:
    return isinstance(e, RefExpr) and isinstance(e.node, TypeInfo)


def _name(callee: Expression) -> str:
    """How an error's path names a callee that is not resolved (``?.create_aggregate``)."""
    if isinstance(callee, RefExpr) and callee.fullname:
        return callee.fullname
    return f"?.{callee.name}" if isinstance(callee, MemberExpr) else "?"


def _names(t: Type, is_class: bool) -> set[str] | None:
    """The methods an API may call on an argument declared as `t` (None: any)."""
    p = get_proper_type(t)
    if isinstance(p, TypeVarType):
        return _names(p.upper_bound, is_class)
    if isinstance(p, UnionType):
        out: set[str] = set()
        for item in p.items:
            names = _names(item, is_class)
            if names is None:
                return None
            out |= names
        return out
    if isinstance(p, CallableType):
        return _names(p.ret_type, False) if is_class else {"__call__"}
    if isinstance(p, TypeType):
        return _names(p.item, False)
    if isinstance(p, TupleType):
        p = p.partial_fallback
    if isinstance(p, Instance):
        return set(_declared_methods(p.type))
    if isinstance(p, AnyType):
        return None
    return set()  # None, a literal...: nothing to call


def _declared_methods(info: TypeInfo) -> list[str]:
    return [
        name
        for base in info.mro
        for name, sym in base.names.items()
        if isinstance(sym.node, (FuncBase, Decorator)) and name not in _CONSTRUCTION
    ]


def _methods(p: Passed, wanted: Wanted, scope: Scope) -> list[str]:
    """The methods of `p` that may run: those `wanted`, else all those outside stubs."""
    if wanted is not None:
        return sorted(wanted)
    return sorted(
        {
            name
            for base in p.info.mro
            if not scope.in_stub(base.fullname)
            for name, sym in base.names.items()
            if isinstance(sym.node, (FuncBase, Decorator)) and name not in _CONSTRUCTION
        }
    )
