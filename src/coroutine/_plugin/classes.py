"""The class of the object an expression evaluates to, as far as the analysed AST says.

The plugin reads a function before mypy infers the types of its variables (see `walk.py`), so
it knows an object's class only where the source names it: a class used as a constructor
(``C(...)``, ``C.method``), a parameter, variable or attribute with a declared type, a
variable assigned ``C(...)`` or the result of a function whose declared return type is a
class, or the variable of a ``for`` over a declared ``Iterable[C]``. Each answer also says
whether the class is only *declared*: then the object may be an instance of a subclass, and a
method called on it may run any override (a dispatch, see `store.py`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from mypy.nodes import (
    AssignmentStmt,
    Block,
    CallExpr,
    ClassDef,
    Decorator,
    DictExpr,
    DictionaryComprehension,
    Expression,
    ForStmt,
    FuncBase,
    FuncDef,
    ListComprehension,
    ListExpr,
    MemberExpr,
    NameExpr,
    Node,
    OverloadedFuncDef,
    RefExpr,
    SetComprehension,
    SetExpr,
    Statement,
    TypeInfo,
    Var,
)
from mypy.types import (
    CallableType,
    Instance,
    Overloaded,
    Type,
    TypeType,
    TypeVarType,
    UnionType,
    get_proper_type,
)

# The class of each variable whose type mypy infers only when it checks the body (after the
# walk), when the AST says it, and whether that class is only declared (see `known_classes`).
Known = dict[Var, tuple[TypeInfo, bool]]


class Modules(Protocol):
    """Where a fullname is defined, as far as the walk needs to know."""

    def in_stub(self, fullname: str) -> bool:
        """Defined in a stub (or in no module mypy knows): no body, nothing to follow."""

    def opaque(self, fullname: str) -> bool:
        """Defined where mypy shows no bodies (a stub or an installed package): its
        parameter types are all we know of what it calls."""

    def builtin(self, name: str) -> TypeInfo | None:
        """The class ``builtins.<name>``."""


@dataclass(frozen=True)
class Scope:
    """What the walk of one function knows besides its body: the classes of module-level and
    local variables, and the modules."""

    module_vars: Known
    local_vars: Known
    modules: Modules

    def in_stub(self, fullname: str) -> bool:
        return self.modules.in_stub(fullname)

    def opaque(self, fullname: str) -> bool:
        return self.modules.opaque(fullname)

    def receiver(self, e: Expression) -> tuple[TypeInfo | None, bool]:
        """The class of the object `e` evaluates to, when the AST alone says so, and whether
        it is only declared (the object may be an instance of a subclass)."""
        if isinstance(e, RefExpr) and isinstance(e.node, TypeInfo):
            return e.node, False  # Class.method
        if isinstance(e, NameExpr) and isinstance(e.node, Var):
            var = e.node
            if var.type is not None:
                return class_of(var.type), True
            return self.local_vars.get(var) or self.module_vars.get(var) or (None, False)
        if isinstance(e, CallExpr) and isinstance(e.callee, RefExpr):
            if isinstance(e.callee.node, TypeInfo):
                return e.callee.node, False
        if isinstance(e, MemberExpr) and isinstance(e.node, Var) and e.node.type is not None:
            return class_of(e.node.type), True
        return None, False

    def receivers(self, e: Expression) -> list[TypeInfo]:
        """The classes the object `e` evaluates to may be: its class, or, for a variable or
        attribute declared as a union (``x: A | None``), the classes in it."""
        info, _ = self.receiver(e)
        if info is not None:
            return [info]
        if isinstance(e, RefExpr) and isinstance(e.node, Var) and e.node.type is not None:
            p = get_proper_type(e.node.type)
            if isinstance(p, UnionType):
                found = (class_of(item) for item in p.items)
                return sorted({i for i in found if i is not None}, key=lambda i: i.fullname)
        return []


def class_of(t: Type) -> TypeInfo | None:
    """The class of an instance of `t` (of ``type[C]``: ``C``; of a type variable: its bound)."""
    p = get_proper_type(t)
    if isinstance(p, TypeVarType):
        p = get_proper_type(p.upper_bound)
    if isinstance(p, Instance):
        return p.type
    if isinstance(p, TypeType) and isinstance(p.item, Instance):
        return p.item.type
    return None


def constructors(info: TypeInfo) -> Iterator[str]:
    """Fullnames of the ``__init__`` and ``__new__`` that building a `info` runs (those of
    ``builtins`` have nothing to follow)."""
    for name in ("__init__", "__new__"):
        node = info.get(name)
        if node is None or not isinstance(node.node, (FuncBase, Decorator)):
            continue
        fullname = fullname_of(node.node)
        if not fullname.startswith("builtins."):
            yield fullname


def fullname_of(node: FuncBase | Decorator) -> str:
    return node.func.fullname if isinstance(node, Decorator) else node.fullname


def signatures(node: Node | None) -> list[CallableType]:
    """The declared signatures of a function, overloaded or decorated (none if unannotated)."""
    t = None
    if isinstance(node, Decorator):
        t = node.var.type or node.func.type
    elif isinstance(node, (FuncDef, OverloadedFuncDef)):
        t = node.type
    p = get_proper_type(t) if t is not None else None
    if isinstance(p, CallableType):
        return [p]
    if isinstance(p, Overloaded):
        return list(p.items)
    return []


# The class of a literal: `x = []` is a list.
_LITERALS = {
    ListExpr: "list",
    ListComprehension: "list",
    DictExpr: "dict",
    DictionaryComprehension: "dict",
    SetExpr: "set",
    SetComprehension: "set",
}


def known_classes(defs: list[Statement], modules: Modules) -> Known:
    """Variables of these statements (not of nested functions) assigned ``C(...)`` or a
    literal (``[]``): exactly a ``C``; assigned ``f(...)`` where every signature of `f`
    returns a ``C``: a ``C`` or a subclass; and bound by ``for x in xs`` over a declared
    iterable of ``C``: likewise."""
    out: Known = {}
    for s in statements(defs):
        if isinstance(s, AssignmentStmt) and type(s.rvalue) in _LITERALS:
            info = modules.builtin(_LITERALS[type(s.rvalue)])
            for lv in s.lvalues:
                if info is not None and isinstance(lv, NameExpr) and isinstance(lv.node, Var):
                    out[lv.node] = (info, False)
        elif isinstance(s, AssignmentStmt) and isinstance(s.rvalue, CallExpr):
            known = _made_by(s.rvalue.callee)
            if known is not None:
                for lv in s.lvalues:
                    if isinstance(lv, NameExpr) and isinstance(lv.node, Var):
                        out[lv.node] = known
        elif isinstance(s, ForStmt) and isinstance(s.index, NameExpr):
            item = _item_class(s.expr)
            if item is not None and isinstance(s.index.node, Var):
                out[s.index.node] = (item, True)
    return out


def _made_by(callee: Expression) -> tuple[TypeInfo, bool] | None:
    """The class of what calling `callee` returns: a class, a function, or a method called
    through its class (``Table.grid()``), whose signatures all return that class."""
    if not isinstance(callee, RefExpr):
        return None
    if isinstance(callee.node, TypeInfo):
        return callee.node, False
    node = callee.node
    if node is None and isinstance(callee, MemberExpr):
        owner = callee.expr
        if isinstance(owner, RefExpr) and isinstance(owner.node, TypeInfo):
            method = owner.node.get(callee.name)
            node = method.node if method is not None else None
    returned = {class_of(sig.ret_type) for sig in signatures(node)}
    if len(returned) == 1:
        info = returned.pop()
        # A generic function's "returns its argument's class" says nothing here.
        return (info, True) if info is not None and info.fullname != "builtins.object" else None
    return None


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
            return class_of(args[0]) if args else None
    return None


def statements(defs: list[Statement]) -> Iterator[Statement]:
    """These statements and those nested in them, not in nested functions or classes."""
    for s in defs:
        yield s
        for block in blocks(s):
            yield from statements(block.body)


def blocks(s: Statement) -> Iterator[Block]:
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
