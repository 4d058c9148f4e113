"""Callbacks: the classes and instances a call hands on count as called from its caller.

Push-style APIs run user code from inside the call: ``xml.sax.parseString(data, handler)``
calls ``handler.startElement``, ``con.create_aggregate("f", 1, Agg)`` builds an ``Agg`` and
calls its ``step`` and ``finalize``. A function or bound method passed on is already an edge
(`walk.py` treats every reference to a function as a possible call); this module adds, for a
class or an instance of a class outside the stubs passed as an argument, the methods the
receiving API may call on it, as edges from the caller *via* the API (so that the path in an
error reads ``main.body -> xml.sax.parseString -> main.Tags.startElement``).

What the API may call is read from the parameter's declared type (`_Declared`):

* a class the object derives from: the type's methods that the object's class defines or
  overrides (``ContentHandler``'s for `parseString`'s handler), when the API's body is not
  read (it is in a stub, as the standard library is, or in an installed package); nothing
  more when it is, since its calls through the parameter are dispatches (`walk.py`);
* a protocol the class implements without naming it: the protocol's methods (``step`` and
  ``finalize`` for `create_aggregate`'s ``Callable[[], _AggregateProtocol]``);
* a ``Callable``: its ``__call__`` for an instance; for a class, its constructors and what
  the callable's return type says (likewise ``type[C]``); a class passed where an instance
  is declared (``isinstance(x, C)``) is not built;
* ``Any``, no annotation, or, for an API whose body is read, ``object``: every method the
  class defines outside the stubs (and, for a class, its constructors); ``object`` (or a
  ``T``) for an API whose body is not read: the methods every object has, as the class
  overrides them (``print(x)`` calls ``x.__str__``); another class: none (the object cannot
  be one); a union: what any of its items says;
* a callee not known before mypy infers types (a method of a variable it infers): every
  method.

An object only declared as its class (a parameter ``h: Handler``) may be a subclass: each
method is then also a dispatch, so the overrides count too. Every method is the one dispatch
``Handler.*``, expanded where a ``New`` is checked into every method of the class and every
override of one (of a subclass of an exact object too: a small over-count, for the cost of
summarising every function that passes an object on). Objects inside containers
(``[Handler()]``) are not followed.

The arguments of `coroutine.aio.await_` and `run_sync` are not callbacks of the coroutine:
the awaitable runs in the event loop's task, the function in `run_sync`'s own body.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

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
    Var,
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

from .classes import Modules, Scope, constructors, fullname_of, signatures

# Calls whose arguments run elsewhere (SPEC §8): never callbacks of the calling coroutine.
AIO_NAMES = frozenset({"coroutine.aio.await_", "coroutine.aio.run_sync"})
# The dispatch `C.*`: every method of `C` and any override of one (see `Store.expand`):
# a single entry, expanded only where a New is checked, for "every method".
ANY_METHOD = "*"
# The methods every object has: an API that takes any `object` may call them (`print`).
_OBJECT_METHODS = frozenset(
    {"__str__", "__repr__", "__format__", "__eq__", "__ne__", "__hash__", "__bool__"}
    | {"__getattribute__", "__setattr__", "__delattr__", "__reduce__", "__reduce_ex__"}
    | {"__sizeof__", "__dir__"}
)
# Called on the class, never on instances handed on.
_CONSTRUCTION = frozenset({"__init__", "__new__", "__init_subclass__", "__class_getitem__"})


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
        names, builds = wanted.get(i, _ANY)
        if p.is_class and builds:
            for init in constructors(p.info):
                add(init, via, False)
        if names is None:  # every method: one dispatch, expanded only at a New (`expand`)
            add(f"{p.info.fullname}.{ANY_METHOD}", via, True)
            continue
        for name in _methods(p, names, scope.modules):
            method = p.info.get(name)
            if method is None or not isinstance(method.node, (FuncBase, Decorator)):
                continue
            fullname = fullname_of(method.node)
            if not scope.in_stub(fullname):
                add(fullname, via, False)
            if p.declared and name not in _OBJECT_METHODS:
                # A subclass's override may answer (not counted for the methods that every
                # object has: too many calls take an object, too few classes yield in those).
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
    """For each argument in `passed`, what the callee may call of it: the method names, and
    whether it may build it (a class); absent: anything."""
    if node is None:
        return {}
    opaque = scope.opaque(fullname_of(node))
    # Not at the top: compiled mypy's mypy.argmap cannot be imported before mypy.types.
    from mypy.argmap import map_actuals_to_formals

    found: dict[int, Wanted] = {}
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
                wanted = _Declared(passed[i], opaque).wanted(sig.arg_types[formal])
                before = found.get(i, Wanted(frozenset(), False))
                found[i] = before.union(wanted)
    return found


class Wanted(NamedTuple):
    """What an API may do with an argument: call these methods (None: any), build it."""

    names: frozenset[str] | None
    builds: bool

    def union(self, other: Wanted) -> Wanted:
        names = None if self.names is None or other.names is None else self.names | other.names
        return Wanted(names, self.builds or other.builds)


_ANY = Wanted(None, True)
_NOTHING = Wanted(frozenset(), False)


class _Declared:
    """What a parameter's declared type says an API may do with the object `p` (see the
    module's docstring); `opaque`: the API's body is not read."""

    def __init__(self, p: Passed, opaque: bool) -> None:
        self.p = p
        self.opaque = opaque

    def wanted(self, t: Type, is_class: bool | None = None) -> Wanted:
        is_class = self.p.is_class if is_class is None else is_class
        p = get_proper_type(t)
        if isinstance(p, TypeVarType):
            return self.wanted(p.upper_bound, is_class)
        if isinstance(p, UnionType):
            out = _NOTHING
            for item in p.items:
                out = out.union(self.wanted(item, is_class))
            return out
        if isinstance(p, CallableType):
            if is_class:  # called: builds it
                return self.wanted(p.ret_type, False)._replace(builds=True)
            return Wanted(frozenset({"__call__"}), False)
        if isinstance(p, TypeType):
            return self.wanted(p.item, False)._replace(builds=True)
        if isinstance(p, TupleType):
            p = p.partial_fallback
        if isinstance(p, AnyType):
            return _ANY
        if not isinstance(p, Instance) or is_class:
            return _NOTHING  # None, a literal; a class passed as a `type`
        if p.type.fullname == "builtins.object":  # print(x): x's __str__, if it has its own
            return Wanted(frozenset(_OBJECT_METHODS), False) if self.opaque else _ANY
        derives = any(base.fullname == p.type.fullname for base in self.p.info.mro)
        if (p.type.is_protocol and not derives) or (derives and self.opaque):
            return Wanted(frozenset(_declared_methods(p.type)), False)
        return _NOTHING


def _callee(callee: Expression, scope: Scope) -> tuple[FuncBase | Decorator | None, bool]:
    """The function a call runs, and whether it is bound (its first parameter is filled)."""
    node: Node | None = None
    bound = False
    if isinstance(callee, RefExpr) and isinstance(callee.node, TypeInfo):
        node, bound = _constructor(callee.node), True  # `self` (or `cls`) filled
    elif isinstance(callee, RefExpr) and isinstance(callee.node, Var):
        info, _ = scope.receiver(callee)  # an object called: `cls(...)`, `highlighter(text)`
        t = get_proper_type(callee.node.type) if callee.node.type is not None else None
        if info is not None and isinstance(t, TypeType):
            node = _constructor(info)
        elif info is not None:
            call = info.get("__call__")
            node = call.node if call is not None else None
        bound = True
    elif isinstance(callee, RefExpr) and callee.node is not None:
        node = callee.node  # a function, or one of a module
    elif isinstance(callee, MemberExpr):
        for info in scope.receivers(callee.expr):  # x: A | None: A's method
            method = info.get(callee.name)
            node = method.node if method is not None else None
            if node is not None:
                break
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


def _declared_methods(info: TypeInfo) -> list[str]:
    """The methods of `info`, but those every object has (``__eq__``, ``__repr__``...)."""
    return [
        name
        for base in info.mro
        if base.fullname != "builtins.object"
        for name, sym in base.names.items()
        if isinstance(sym.node, (FuncBase, Decorator)) and name not in _CONSTRUCTION
    ]


def every_method(info: TypeInfo, modules: Modules) -> list[str]:
    """The fullnames of every method of `info` written outside stubs (what ``C.*`` runs)."""
    out = []
    for name in _methods(Passed(info, False, False), None, modules):
        method = info.get(name)
        if method is not None and isinstance(method.node, (FuncBase, Decorator)):
            out.append(fullname_of(method.node))
    return out


def _methods(p: Passed, wanted: frozenset[str] | None, modules: Modules) -> list[str]:
    """The names of the methods of `p` that may run: those `wanted`, else all those written
    outside stubs (not those mypy makes, as a named tuple's ``_replace``)."""
    if wanted is not None:
        return sorted(wanted)
    return sorted(
        {
            name
            for base in p.info.mro
            if not modules.in_stub(base.fullname)
            for name, sym in base.names.items()
            if isinstance(sym.node, (FuncBase, Decorator))
            and not sym.plugin_generated
            and name not in _CONSTRUCTION
        }
    )
