"""What one function can do to a coroutine, read from mypy's semantically analysed AST.

For every function of a module this finds its *local facts*: the ``Yield[R, S]`` and
``LoadContext[R, S]`` pairs written in its body (nested functions and lambdas included, since
they run when the function calls or hands them on), and its *edges*: the fullnames of the
functions it may call. An edge is any reference to a function or method, called or not
(a reference passed as an argument is treated as possibly called), a class used as a
constructor (its ``__init__`` and ``__new__``), a method reached through an object whose
class the AST names (see `classes.py`), a decorated function's decorators, and the methods of
classes and instances passed as arguments that the receiving API may call (see
`callbacks.py`). The argument of a nested ``New(...)`` belongs to the inner coroutine and is
skipped; the arguments of `coroutine.aio`'s ``await_`` and ``run_sync`` run elsewhere.

A method reached through an object whose class is only declared (``self``, ``cls``, an
annotated parameter, variable or attribute, a variable assigned the result of a function
declared to return the class, the variable of a ``for`` over a declared ``Iterable``) is
also a *dispatch*: at run time any override of it in a subclass may answer.
The walk records it as ``"pkg.mod.Base.render"`` (the declared class and the method name)
without looking for overrides, which may live in modules not written yet; `store.py` expands
it where a ``New`` is checked. Variables whose type mypy infers are not known here: mypy
infers them when it checks the body, after the walk.

The AST is only alive while mypy processes the module, so this runs then; `store.py` keeps
the result. mypy is compiled, so we walk with ``isinstance`` instead of subclassing its
visitors.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from mypy.nodes import (
    CallExpr,
    ClassDef,
    Decorator,
    Expression,
    FuncBase,
    FuncDef,
    IndexExpr,
    LambdaExpr,
    MemberExpr,
    MypyFile,
    Node,
    OverloadedFuncDef,
    RefExpr,
    Statement,
    TypeAlias,
    TypeApplication,
    TypeInfo,
    Var,
)
from mypy.server.subexpr import get_subexpressions
from mypy.types import Instance, Type, get_proper_type

from .callbacks import AIO_NAMES, call_callbacks
from .classes import Known, Modules, Scope, blocks, constructors, fullname_of, known_classes

# Fullnames of the names the plugin recognises (the stubs' and the runtime's spellings).
YIELD_NAMES = frozenset({"coroutine.Yield", "coroutine._yield.Yield"})
LOAD_NAMES = frozenset({"coroutine.LoadContext", "coroutine._yield.LoadContext"})
NEW_NAMES = frozenset(
    {
        "coroutine.New",
        "coroutine.NewWithReturn",
        "coroutine._coroutine.New",
        "coroutine._coroutine.NewWithReturn",
    }
)
# A class named so in a module declares the yields of its functions (see docs).
DECLARATIONS = "__coroutine_yields__"


@dataclass
class Site:
    """One ``Yield[R, S]`` (or ``LoadContext[R, S]``) written in a function."""

    kind: str  # "Yield" or "LoadContext"
    r: Type
    s: Type


@dataclass
class Facts:
    """What one function does directly: its yield sites, the functions it may call, and the
    methods it calls through a declared class (``"pkg.mod.Base.render"``)."""

    sites: list[Site] = field(default_factory=list)
    edges: set[str] = field(default_factory=set)
    dispatches: set[str] = field(default_factory=set)
    # The API through which an edge (False) or dispatch (True) that is only a callback is
    # reached: it goes in the path.
    via: dict[tuple[str, bool], str] = field(default_factory=dict)

    def add_edge(self, name: str, dispatch: bool = False) -> None:
        """A call (or dispatch) written in the function: it needs no `via`."""
        (self.dispatches if dispatch else self.edges).add(name)
        self.via.pop((name, dispatch), None)

    def add_callback(self, name: str, via: str, dispatch: bool) -> None:
        """A method that the API `via` may call on an object the function hands it."""
        into = self.dispatches if dispatch else self.edges
        if name not in into:
            into.add(name)
            self.via[name, dispatch] = via

    def path_to(self, name: str, dispatch: bool = False) -> tuple[str, ...]:
        """The steps from this function to `name` beyond it: the API it was handed to."""
        via = self.via.get((name, dispatch))
        return (via,) if via is not None else ()


def module_facts(tree: MypyFile, modules: Modules) -> dict[str, Facts]:
    """Facts for every function and method defined at the top of `tree` (bodies included)."""
    out: dict[str, Facts] = {}
    module_vars = known_classes(tree.defs, modules)
    for fn in _functions(tree.defs):
        out[fn.fullname] = function_facts(fn, module_vars, modules)
    for fullname, sites in declared_sites(tree).items():
        out.setdefault(fullname, Facts()).sites.extend(sites)
    return out


def function_facts(
    fn: FuncBase | Decorator | LambdaExpr, module_vars: Known, modules: Modules
) -> Facts:
    """Facts of one function, lambda or decorated function, from its live body."""
    facts = Facts()
    if isinstance(fn, Decorator):
        for dec in fn.decorators:
            _expressions(dec, facts, Scope(module_vars, {}, modules))
        fn = fn.func
    if isinstance(fn, OverloadedFuncDef):
        # The items share the implementation's fullname; only the implementation runs.
        impl = fn.impl
        return function_facts(impl, module_vars, modules) if impl is not None else facts
    body = fn.body.body if isinstance(fn, (FuncDef, LambdaExpr)) else []
    local_vars = known_classes(body, modules)
    _expressions(fn, facts, Scope(module_vars, local_vars, modules))
    return facts


def _expressions(node: Node, facts: Facts, scope: Scope) -> None:
    exprs = get_subexpressions(node)
    skip: set[int] = set()  # belongs to a nested coroutine
    elsewhere: set[int] = set()  # handed to coroutine.aio: not called from here
    for e in exprs:
        if not isinstance(e, CallExpr):
            continue
        name = _callee_name(e.callee)
        if name in NEW_NAMES:
            for arg in e.args:
                skip.update(id(x) for x in get_subexpressions(arg))
        elif name in AIO_NAMES:
            elsewhere.update(id(arg) for arg in e.args)
    for e in exprs:
        if id(e) in skip:
            continue
        if isinstance(e, IndexExpr) and isinstance(e.analyzed, TypeApplication):
            site = _site(e.analyzed)
            if site is not None:
                facts.sites.append(site)
        elif isinstance(e, RefExpr) and isinstance(e.node, TypeAlias):
            facts.sites.extend(_declared_pairs(e.node.target))  # Ask = Yield[str, int]
        elif isinstance(e, RefExpr):
            if id(e) not in elsewhere and e.fullname not in AIO_NAMES:
                _ref_edges(e, facts, scope)
        elif isinstance(e, CallExpr) and _callee_name(e.callee) not in AIO_NAMES:
            if isinstance(e.callee, RefExpr) and isinstance(e.callee.node, TypeInfo):
                for init in constructors(e.callee.node):
                    facts.add_edge(init)
            call_callbacks(e, scope, facts.add_callback)


def _site(app: TypeApplication) -> Site | None:
    name = _callee_name(app.expr)
    if len(app.types) != 2:
        return None
    if name in YIELD_NAMES:
        return Site("Yield", app.types[0], app.types[1])
    if name in LOAD_NAMES:
        return Site("LoadContext", app.types[0], app.types[1])
    return None


def _callee_name(e: Expression) -> str | None:
    if isinstance(e, IndexExpr):
        if isinstance(e.analyzed, TypeApplication):
            e = e.analyzed.expr
        else:
            e = e.base
    if isinstance(e, RefExpr):
        return e.fullname
    return None


def _ref_edges(e: RefExpr, facts: Facts, scope: Scope) -> None:
    node = e.node
    if isinstance(node, (FuncBase, Decorator)):
        facts.add_edge(fullname_of(node))
    elif node is None and isinstance(e, MemberExpr):
        info, declared = scope.receiver(e.expr)
        if info is not None:
            method = info.get(e.name)
            if method is not None and isinstance(method.node, (FuncBase, Decorator)):
                facts.add_edge(fullname_of(method.node))
                if declared:
                    facts.add_edge(f"{info.fullname}.{e.name}", dispatch=True)


def _functions(defs: list[Statement]) -> Iterator[FuncBase | Decorator]:
    """Top-level functions and the methods of top-level (and nested) classes."""
    for d in defs:
        if isinstance(d, (FuncDef, OverloadedFuncDef, Decorator)):
            yield d
        elif isinstance(d, ClassDef):
            yield from _functions(d.defs.body)
        else:
            for block in blocks(d):
                yield from _functions(block.body)


def declared_sites(tree: MypyFile) -> dict[str, list[Site]]:
    """Yields declared by the module's ``class __coroutine_yields__`` (see the docs).

    Each annotation names a function of the module (a nested class names a class, for its
    methods) and gives a ``Yield[R, S]``, a ``LoadContext[R, S]``, or a tuple of them. Read
    from the symbol table, so it works for installed packages, stubs and cached modules.
    """
    sym = tree.names.get(DECLARATIONS)
    if sym is None or not isinstance(sym.node, TypeInfo):
        return {}
    out: dict[str, list[Site]] = {}
    _declared(sym.node, tree.fullname, out)
    return out


def _declared(info: TypeInfo, prefix: str, out: dict[str, list[Site]]) -> None:
    for name, sym in info.names.items():
        if isinstance(sym.node, TypeInfo):
            _declared(sym.node, f"{prefix}.{name}", out)
        elif isinstance(sym.node, Var) and sym.node.type is not None:
            sites = list(_declared_pairs(sym.node.type))
            if sites:
                out.setdefault(f"{prefix}.{name}", []).extend(sites)


def _declared_pairs(t: Type) -> Iterator[Site]:
    from mypy.types import TupleType, UnionType

    p = get_proper_type(t)
    if isinstance(p, (TupleType, UnionType)):
        for item in p.items:
            yield from _declared_pairs(item)
    elif isinstance(p, Instance) and len(p.args) == 2:
        if p.type.fullname in YIELD_NAMES:
            yield Site("Yield", p.args[0], p.args[1])
        elif p.type.fullname in LOAD_NAMES:
            yield Site("LoadContext", p.args[0], p.args[1])
