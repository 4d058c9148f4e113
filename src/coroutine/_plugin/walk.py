"""What one function can do to a coroutine, read from mypy's semantically analysed AST.

For every function of a module this finds its *local facts*: the ``Yield[R, S]`` and
``LoadContext[R, S]`` pairs written in its body (nested functions and lambdas included, since
they run when the function calls or hands them on), and its *edges*: the fullnames of the
functions it may call. An edge is any reference to a function or method, called or not
(a reference passed as an argument is treated as possibly called), a class used as a
constructor (its ``__init__`` and ``__new__``), a method reached through ``self``, an
annotated parameter or variable, or a variable assigned ``C(...)``, and a decorated
function's decorators. The argument of a nested ``New(...)`` belongs to the inner coroutine
and is skipped.

A method reached through an object whose class is only declared (``self``, ``cls``, an
annotated parameter, variable or attribute, the variable of a ``for`` over a declared
``Iterable``) is also a *dispatch*: at run time any override of it in a subclass may answer.
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
    AssignmentStmt,
    Block,
    CallExpr,
    ClassDef,
    Decorator,
    Expression,
    ForStmt,
    FuncBase,
    FuncDef,
    IndexExpr,
    LambdaExpr,
    MemberExpr,
    MypyFile,
    NameExpr,
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
from mypy.types import Instance, Type, TypeType, get_proper_type

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

# The class of each variable whose type mypy infers only when it checks the body (after the
# walk), when the AST says it, and whether that class is only declared (see `known_classes`).
Known = dict[Var, tuple[TypeInfo, bool]]


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


def module_facts(tree: MypyFile) -> dict[str, Facts]:
    """Facts for every function and method defined at the top of `tree` (bodies included)."""
    out: dict[str, Facts] = {}
    module_vars = known_classes(tree.defs)
    for fn in _functions(tree.defs):
        out[fn.fullname] = function_facts(fn, module_vars)
    for fullname, sites in declared_sites(tree).items():
        out.setdefault(fullname, Facts()).sites.extend(sites)
    return out


def function_facts(fn: FuncBase | Decorator | LambdaExpr, module_vars: Known) -> Facts:
    """Facts of one function, lambda or decorated function, from its live body."""
    facts = Facts()
    if isinstance(fn, Decorator):
        for dec in fn.decorators:
            _expressions(dec, facts, module_vars, {})
        fn = fn.func
    if isinstance(fn, OverloadedFuncDef):
        # The items share the implementation's fullname; only the implementation runs.
        return function_facts(fn.impl, module_vars) if fn.impl is not None else facts
    local_vars = known_classes(fn.body.body) if isinstance(fn, FuncItemTypes) else {}
    _expressions(fn, facts, module_vars, local_vars)
    return facts


FuncItemTypes = (FuncDef, LambdaExpr)


def _expressions(node: Node, facts: Facts, module_vars: Known, local_vars: Known) -> None:
    exprs = get_subexpressions(node)
    skip: set[int] = set()
    for e in exprs:
        if isinstance(e, CallExpr) and _callee_name(e.callee) in NEW_NAMES:
            for arg in e.args:
                skip.update(id(x) for x in get_subexpressions(arg))
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
            _ref_edges(e, facts, module_vars, local_vars)
        elif isinstance(e, CallExpr) and isinstance(e.callee, RefExpr):
            if isinstance(e.callee.node, TypeInfo):
                facts.edges.update(_constructors(e.callee.node))


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


def _ref_edges(e: RefExpr, facts: Facts, module_vars: Known, local_vars: Known) -> None:
    node = e.node
    if isinstance(node, (FuncBase, Decorator)):
        facts.edges.add(_fullname(node))
    elif node is None and isinstance(e, MemberExpr):
        info, declared = _receiver_class(e.expr, module_vars, local_vars)
        if info is not None:
            method = info.get(e.name)
            if method is not None and isinstance(method.node, (FuncBase, Decorator)):
                facts.edges.add(_fullname(method.node))
                if declared:
                    facts.dispatches.add(f"{info.fullname}.{e.name}")


def _receiver_class(
    e: Expression, module_vars: Known, local_vars: Known
) -> tuple[TypeInfo | None, bool]:
    """The class of the object `e` evaluates to, when the AST alone says so, and whether it is
    only declared (the object may be an instance of a subclass)."""
    if isinstance(e, RefExpr) and isinstance(e.node, TypeInfo):
        return e.node, False  # Class.method
    if isinstance(e, NameExpr) and isinstance(e.node, Var):
        var = e.node
        if var.type is not None:
            return _class_of(var.type), True
        return local_vars.get(var) or module_vars.get(var) or (None, False)
    if isinstance(e, CallExpr) and isinstance(e.callee, RefExpr):
        if isinstance(e.callee.node, TypeInfo):
            return e.callee.node, False
    if isinstance(e, MemberExpr) and isinstance(e.node, Var) and e.node.type is not None:
        return _class_of(e.node.type), True
    return None, False


def _class_of(t: Type) -> TypeInfo | None:
    p = get_proper_type(t)
    if isinstance(p, Instance):
        return p.type
    if isinstance(p, TypeType) and isinstance(p.item, Instance):
        return p.item.type
    return None


def _constructors(info: TypeInfo) -> Iterator[str]:
    for name in ("__init__", "__new__"):
        node = info.get(name)
        if node is None or not isinstance(node.node, (FuncBase, Decorator)):
            continue
        fullname = _fullname(node.node)
        if not fullname.startswith("builtins."):
            yield fullname


def _fullname(node: FuncBase | Decorator) -> str:
    return node.func.fullname if isinstance(node, Decorator) else node.fullname


def _functions(defs: list[Statement]) -> Iterator[FuncBase | Decorator]:
    """Top-level functions and the methods of top-level (and nested) classes."""
    for d in defs:
        if isinstance(d, (FuncDef, OverloadedFuncDef, Decorator)):
            yield d
        elif isinstance(d, ClassDef):
            yield from _functions(d.defs.body)
        else:
            for block in _blocks(d):
                yield from _functions(block.body)


def known_classes(defs: list[Statement]) -> Known:
    """Variables of these statements (not of nested functions) assigned ``C(...)``: exactly a
    ``C``; and those bound by ``for x in xs`` over a declared iterable of ``C``: a ``C`` or a
    subclass."""
    out: Known = {}
    for s in _statements(defs):
        if isinstance(s, AssignmentStmt) and isinstance(s.rvalue, CallExpr):
            callee = s.rvalue.callee
            if isinstance(callee, RefExpr) and isinstance(callee.node, TypeInfo):
                for lv in s.lvalues:
                    if isinstance(lv, NameExpr) and isinstance(lv.node, Var):
                        out[lv.node] = (callee.node, False)
        elif isinstance(s, ForStmt) and isinstance(s.index, NameExpr):
            item = _item_class(s.expr)
            if item is not None and isinstance(s.index.node, Var):
                out[s.index.node] = (item, True)
    return out


def _item_class(e: Expression) -> TypeInfo | None:
    """The class of the items of `e`, when `e` is declared as an ``Iterable[C]``."""
    # Not at the top: compiled mypy's mypy.maptype cannot be imported before mypy.types.
    from mypy.maptype import map_instance_to_supertype

    if not isinstance(e, RefExpr) or not isinstance(e.node, Var) or e.node.type is None:
        return None
    p = get_proper_type(e.node.type)
    if not isinstance(p, Instance):
        return None
    for base in p.type.mro:
        if base.fullname == "typing.Iterable":
            args = map_instance_to_supertype(p, base).args
            return _class_of(args[0]) if args else None
    return None


def _statements(defs: list[Statement]) -> Iterator[Statement]:
    for s in defs:
        yield s
        for block in _blocks(s):
            yield from _statements(block.body)


def _blocks(s: Statement) -> Iterator[Block]:
    """The blocks nested in a compound statement other than a function or class."""
    if isinstance(s, (FuncDef, Decorator, OverloadedFuncDef, ClassDef)):
        return
    for attr in ("body", "else_body", "finally_body"):
        value = getattr(s, attr, None)
        if isinstance(value, Block):
            yield value
        elif isinstance(value, list):
            yield from (b for b in value if isinstance(b, Block))
    for attr in ("handlers", "bodies"):
        for b in getattr(s, attr, None) or ():
            if isinstance(b, Block):
                yield b


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
