"""The checks made at a call: the types a call returns, and the reachability check at ``New``.

The compatibility rule is the runtime's (SPEC §5): a ``Yield[R2, S2]`` fits a coroutine of
``[R, S]`` when ``R2`` is a subtype of ``R`` and ``S`` a subtype of ``S2``; ``Any`` fits both
ways (mypy's `is_subtype` already treats it so).
"""

from __future__ import annotations

from mypy.errorcodes import ErrorCode
from mypy.messages import format_type_bare
from mypy.nodes import Decorator, FuncDef, LambdaExpr, MypyFile, RefExpr
from mypy.plugin import FunctionContext
from mypy.subtypes import is_subtype
from mypy.types import AnyType, CallableType, Instance, NoneType, Type, TypeOfAny, get_proper_type

from . import daemon
from .classes import Known, known_classes
from .closure import Closure, Reached
from .store import Store
from .walk import Facts, function_facts

YIELD_MISMATCH = ErrorCode(
    "coroutine-yield",
    "A Yield reachable from New[R, S](fn) does not fit the coroutine's [R, S]",
    "coroutine",
)


def pair_of(t: Type) -> tuple[Type, Type] | None:
    """``[R, S]`` of a ``Coroutine[R, S, T]``, ``New``, ``Yield``... instance type."""
    p = get_proper_type(t)
    if isinstance(p, Instance) and len(p.args) in (2, 3):
        return p.args[0], p.args[1]
    return None


def yield_result(ctx: FunctionContext) -> Type:
    """``Yield[R, S](v)`` is an ``S`` (mypy < 2.2 ignores ``__new__``'s return type)."""
    pair = pair_of(ctx.default_return_type)
    p = get_proper_type(ctx.default_return_type)
    if pair is None or not isinstance(p, Instance) or not p.type.fullname.endswith("Yield"):
        return ctx.default_return_type
    return pair[1]


def as_generic(ctx: FunctionContext, suffix: str) -> Type:
    """Make ``New[R, S](fn)`` a ``Coroutine[R, S, None]``, ``NewWithReturn[R, S](fn)`` a
    ``Coroutine[R, S, T]`` with ``T`` the return type of `fn`, and ``LoadContext[R, S]()`` a
    ``Context[R, S]`` on mypy versions that ignore ``__new__``'s return type."""
    p = get_proper_type(ctx.default_return_type)
    if not isinstance(p, Instance) or not p.type.fullname.endswith(suffix):
        return ctx.default_return_type
    if suffix == "LoadContext":
        return ctx.api.named_generic_type("coroutine.Context", list(p.args))
    returned: Type = NoneType()
    if suffix == "NewWithReturn":
        fn = get_proper_type(ctx.arg_types[0][0]) if ctx.arg_types and ctx.arg_types[0] else None
        returned = fn.ret_type if isinstance(fn, CallableType) else AnyType(TypeOfAny.special_form)
    return ctx.api.named_generic_type("coroutine.Coroutine", [*p.args[:2], returned])


def check_new(ctx: FunctionContext, store: Store, tree: MypyFile | None, name: str) -> None:
    """Report each yield reachable from ``New[R, S](fn)`` that does not fit ``[R, S]``."""
    pair = pair_of(ctx.default_return_type)
    if pair is None or not ctx.args or not ctx.args[0]:
        return
    entry, found = _reach(ctx, store, tree)
    if store.live and tree is not None:
        scope = getattr(ctx.api, "tscope", None)  # the TypeChecker's: the target checked
        if scope is not None:
            daemon.depend(tree, scope.current_target())
    for r in store.expand(found, tree):
        r2, s2 = store.load_type(r.r), store.load_type(r.s)
        if is_subtype(r2, pair[0]) and is_subtype(pair[1], s2):
            continue
        msg = _message(ctx, name, pair, entry, r, r2, s2)
        ctx.api.fail(msg, ctx.context, code=YIELD_MISMATCH)


def _reach(ctx: FunctionContext, store: Store, tree: MypyFile | None) -> tuple[str, Closure]:
    """The entry's name and what is reachable from it by direct calls."""
    arg = ctx.args[0][0]
    if isinstance(arg, LambdaExpr):
        facts = function_facts(arg, _module_vars(tree, store), store)
        return "<lambda>", store.reach_from("<lambda>", facts)
    node: FuncDef | Decorator | None = None
    if isinstance(arg, RefExpr) and isinstance(arg.node, (FuncDef, Decorator)):
        node = arg.node
    else:
        t = get_proper_type(ctx.arg_types[0][0]) if ctx.arg_types[0] else None
        if isinstance(t, CallableType) and isinstance(t.definition, FuncDef):
            node = t.definition
    if node is None:
        return "", Closure()
    return node.fullname, _reach_def(node, store, tree)


def _reach_def(node: FuncDef | Decorator, store: Store, tree: MypyFile | None) -> Closure:
    fn = node.func if isinstance(node, Decorator) else node
    local = "." not in fn.fullname or (tree is not None and _in_module(fn.fullname, tree))
    if fn.body.body and local:
        # Alive in the module being checked (nested functions are only known here).
        return store.reach_from(fn.fullname, function_facts(node, _module_vars(tree, store), store))
    return store.reach_from(fn.fullname)


def _in_module(fullname: str, tree: MypyFile) -> bool:
    return fullname.startswith(tree.fullname + ".")


def _module_vars(tree: MypyFile | None, store: Store) -> Known:
    return known_classes(tree.defs, store) if tree is not None else {}


def _message(
    ctx: FunctionContext,
    name: str,
    pair: tuple[Type, Type],
    entry: str,
    r: Reached,
    r2: Type,
    s2: Type,
) -> str:
    opts = ctx.api.options

    def fmt(t: Type) -> str:
        return f'"{format_type_bare(t, opts)}"'

    via = " -> ".join((entry, *r.path)) if r.path else f"directly in {entry}"
    if not is_subtype(r2, pair[0]):
        why = f"it yields {fmt(r2)}, which is not a subtype of the coroutine's R {fmt(pair[0])}"
    else:
        why = (
            f"it expects {fmt(s2)} sent back, but the coroutine's S {fmt(pair[1])} is not a "
            "subtype of it"
        )
    return (
        f"{name}[{format_type_bare(pair[0], opts)}, {format_type_bare(pair[1], opts)}] reaches "
        f'{r.kind}[{format_type_bare(r2, opts)}, {format_type_bare(s2, opts)}] in "{r.site}" '
        f"({via}): {why}"
    )


__all__ = ["YIELD_MISMATCH", "Facts", "as_generic", "check_new", "pair_of", "yield_result"]
