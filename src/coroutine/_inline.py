"""The driver primitive compiled into the hot driving operations, at import (pure Python only).

Theory of operation. `_context.resume` is the one driver primitive (rules D1-D3): every
driving operation calls it. In pure Python that call is a third of what a round trip spends
beside the switch itself (about 500 of 1,500 instructions on CPython 3.11), so the hot
operations (`Coroutine.Next`, `__next__` and `send`, `Run`'s loop, `_context.start`) are
recompiled at import with the primitive's statements in place of each call to it: one
source, no copy written by hand, so the two cannot drift. The creation path gets the same
treatment (`start` into `Coroutine._advance`, `_context.new_context` into `_create`). When
the compiled extension is loaded (`coroutine.ACCELERATED`) nothing here runs: the extension
replaces these operations.

`inline(primitive, caller)` returns `caller` recompiled, or `caller` itself if either source
cannot be read (a distribution without ``.py`` files): the semantics are the same, only the
call is not saved. It refuses, with `InlineError` at import, what it cannot inline soundly:

    I1. Each call to the primitive is the whole value of a statement (``return resume(...)``,
        ``name = resume(...)``, ``if resume(...):``), with positional arguments only.
    I2. The primitive's only ``return`` is its last statement, and it defines no function or
        class and does not yield: its statements then run in the caller's frame unchanged.
    I3. The primitive's parameters and local names are renamed ``_<primitive>_<name>``, so
        they cannot clash with the caller's (a parameter it never assigns is replaced by its
        argument, if that is a name or a constant). Every global name it reads is bound in
        the caller's module to the same object as in its own: the inliner binds the missing
        ones, and refuses a name the caller's module binds to something else.
    I4. Every inlined statement carries the line number of the call it replaces: a traceback
        or a line-coverage report reads the caller's source, at the line of that call.
    I5. A parameter whose argument is the constant None decides the primitive's tests
        ``if p is None`` and ``if p is not None`` on it: the branch not taken is dropped, and
        the constant replaces the parameter (as in I3). Sound only if nothing left assigns
        it (then it is None throughout): else the inliner refuses.

So a fault injected at a line event of the caller (the fault sweep of `tests/`) lands before
the inlined statements or after them, never between two of them; the primitive itself, which
the cold operations still call, is swept statement by statement.
"""

from __future__ import annotations
import __future__

import ast
import builtins
import copy
import functools
import inspect
import linecache
import textwrap
import types
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

__all__ = ["InlineError", "inline"]

F = TypeVar("F", bound=Callable[..., Any])


class InlineError(Exception):
    """A caller or primitive the inliner cannot handle soundly (rules I1-I3, I5)."""


def inline(primitive: Callable[..., Any], caller: F) -> F:
    """`caller`, recompiled with `primitive`'s body in place of each call to it."""
    if _TREE in caller.__dict__:
        raise InlineError(f"{caller.__qualname__} is recompiled already: inline into it first")
    if caller.__closure__ is not None:
        raise InlineError(f"{caller.__qualname__} is a closure: it cannot be recompiled alone")
    try:
        prim = _primitive(primitive)
        tree = _function_ast(_source(caller), caller, caller=True)
    except OSError:  # no source to read: keep the call
        return caller
    _bind_globals(prim, primitive, caller)
    count = _Splicer(primitive.__name__, prim).splice(tree)
    if count == 0:
        raise InlineError(f"{caller.__qualname__} does not call {primitive.__name__}")
    return _compiled(tree, caller)  # type: ignore[no-any-return]


@functools.cache
def _source(fn: Any) -> str:
    tree = fn.__dict__.get(_TREE)
    if tree is not None:  # recompiled: its own statements (their lines do not matter, I4)
        return ast.unparse(tree)
    code = fn.__code__
    lines = linecache.getlines(code.co_filename)  # not inspect.getsource: it scans sys.modules
    if not lines:
        raise OSError(f"no source for {fn.__qualname__}")
    return textwrap.dedent("".join(inspect.getblock(lines[code.co_firstlineno - 1 :])))


def _function_ast(source: str, fn: Any, *, caller: bool = False) -> ast.FunctionDef:
    node = ast.parse(source).body[0]
    if not isinstance(node, ast.FunctionDef) or node.decorator_list:
        raise InlineError(f"{fn.__qualname__} is not a plain function definition")
    if caller:  # the caller's lines are its file's; the primitive's do not matter (I4)
        ast.increment_lineno(node, fn.__code__.co_firstlineno - node.lineno)
    return node


def _unannotated(stmt: ast.stmt) -> ast.stmt:
    """``x: T = v`` as ``x = v``: a local's annotation is never evaluated (nor checked, I3)."""
    if isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
        return ast.copy_location(ast.Assign([stmt.target], stmt.value), stmt)
    return stmt


class _Primitive(NamedTuple):
    """A primitive ready to inline: its renamed parameters and statements, as text to parse
    anew at each call site (cheaper than a deep copy), and the globals it reads."""

    params: list[str]
    text: str
    reads: frozenset[str]


@functools.cache
def _primitive(fn: Any) -> _Primitive:
    """`fn` checked against rules I1 and I2 and renamed (I3), its docstring dropped."""
    prim = _function_ast(_source(fn), fn)
    body = [_unannotated(stmt) for stmt in prim.body]
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    last = body[-1] if body else None
    if not isinstance(last, ast.Return) or last.value is None:
        raise InlineError(f"{fn.__name__} must end with its only return (rule I2)")
    for node in ast.walk(ast.Module(body=body[:-1], type_ignores=[])):
        if isinstance(node, (ast.Return, ast.Yield, ast.YieldFrom, ast.Await)) or isinstance(
            node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
        ):
            raise InlineError(f"{fn.__name__} has a {type(node).__name__} (rule I2)")
    args = prim.args
    if args.vararg or args.kwarg or args.kwonlyargs or args.defaults or args.posonlyargs:
        raise InlineError(f"{fn.__name__} must take plain positional parameters (rule I1)")
    local = set(fn.__code__.co_varnames)
    names = [n for n in ast.walk(ast.Module(body=body, type_ignores=[])) if isinstance(n, ast.Name)]
    reads = frozenset(n.id for n in names if n.id not in local and not hasattr(builtins, n.id))
    rename = _Renamer(f"_{fn.__name__}_", local)
    body = [rename.visit(stmt) for stmt in body]
    text = ast.unparse(ast.fix_missing_locations(ast.Module(body=body, type_ignores=[])))
    return _Primitive([rename.prefix + a.arg for a in args.args], text, reads)


def _bind_globals(prim: _Primitive, primitive: Any, caller: Any) -> None:
    """Rule I3: the primitive's global names, bound in the caller's module to the same objects."""
    theirs, ours = primitive.__globals__, caller.__globals__
    for name in sorted(prim.reads):
        want = theirs[name]
        if ours.setdefault(name, want) is not want:
            raise InlineError(
                f"{primitive.__name__} reads the global {name!r}, which {caller.__module__} "
                f"binds to another object (rule I3): rename it there"
            )


class _Renamer(ast.NodeTransformer):
    def __init__(self, prefix: str, local: set[str]) -> None:
        self.prefix, self.local = prefix, local

    def visit_Name(self, node: ast.Name) -> ast.Name:
        if node.id in self.local:
            return ast.copy_location(ast.Name(self.prefix + node.id, node.ctx), node)
        return node

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> ast.ExceptHandler:
        if node.name in self.local:
            node.name = self.prefix + node.name
        self.generic_visit(node)
        return node


class _Splicer(ast.NodeTransformer):
    """Replaces each statement whose value is a call to the primitive (rule I1)."""

    def __init__(self, name: str, prim: _Primitive) -> None:
        self.name, self.prim, self.count = name, prim, 0

    def splice(self, tree: ast.FunctionDef) -> int:
        self.visit(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id == self.name:
                raise InlineError(
                    f"a call to {self.name} in {tree.name} is not a statement's whole value "
                    "(rule I1)"
                )
        return self.count

    def visit_Return(self, node: ast.Return) -> Any:
        return self._inlined(node, node.value, lambda v: ast.Return(v))

    def visit_Assign(self, node: ast.Assign) -> Any:
        return self._inlined(node, node.value, lambda v: ast.Assign(node.targets, v))

    def visit_If(self, node: ast.If) -> Any:
        self.generic_visit(node)
        return self._inlined(node, node.test, lambda v: ast.If(v, node.body, node.orelse))

    def _inlined(
        self, node: ast.stmt, value: ast.expr | None, tail: Callable[[ast.expr], ast.stmt]
    ) -> Any:
        if not (
            isinstance(value, ast.Call)
            and isinstance(value.func, ast.Name)
            and value.func.id == self.name
        ):
            return node
        params, stmts = self.prim.params, ast.parse(self.prim.text).body
        if value.keywords or len(value.args) != len(params):
            raise InlineError(f"call {self.name} with {len(params)} positional arguments")
        self.count += 1
        nones = {p for p, a in zip(params, value.args, strict=True) if _is_none(a)}
        stmts = _Decided(nones).visit(ast.Module(body=stmts, type_ignores=[])).body  # rule I5
        assigned = {
            n.id
            for n in ast.walk(ast.Module(body=stmts, type_ignores=[]))
            if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)
        }
        if nones & assigned:
            raise InlineError(f"{self.name} assigns {sorted(nones & assigned)} (rule I5)")
        bound: list[ast.stmt] = []
        plain: dict[str, ast.expr] = {}  # rule I3: a name or constant needs no local of its own
        for param, arg in zip(params, value.args, strict=True):
            if isinstance(arg, (ast.Name, ast.Constant)) and param not in assigned:
                plain[param] = arg
            else:
                bound.append(ast.Assign([ast.Name(param, ast.Store())], arg))
        body = ast.Module(body=bound + stmts, type_ignores=[])
        body = _Substituted(plain).visit(body)
        for part in ast.walk(body):  # rule I4
            if isinstance(part, (ast.stmt, ast.expr, ast.excepthandler)):
                part.lineno = part.end_lineno = node.lineno
                part.col_offset, part.end_col_offset = node.col_offset, node.end_col_offset
        *stmts, last = body.body
        assert isinstance(last, ast.Return) and last.value is not None  # rule I2
        return [*stmts, ast.copy_location(tail(last.value), node)]


def _is_none(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


class _Decided(ast.NodeTransformer):
    """Rule I5: ``if p is None`` / ``if p is not None`` on a parameter bound to None."""

    def __init__(self, nones: set[str]) -> None:
        self.nones = nones

    def visit_If(self, node: ast.If) -> Any:
        self.generic_visit(node)
        test = node.test
        if (
            isinstance(test, ast.Compare)
            and isinstance(test.left, ast.Name)
            and test.left.id in self.nones
            and len(test.ops) == 1
            and isinstance(test.ops[0], (ast.Is, ast.IsNot))
            and _is_none(test.comparators[0])
        ):
            taken = node.body if isinstance(test.ops[0], ast.Is) else node.orelse
            return taken or [ast.Pass()]
        return node


class _Substituted(ast.NodeTransformer):
    def __init__(self, plain: dict[str, ast.expr]) -> None:
        self.plain = plain

    def visit_Name(self, node: ast.Name) -> ast.expr:
        arg = self.plain.get(node.id)
        return node if arg is None else copy.copy(arg)


def _compiled(tree: ast.FunctionDef, caller: Any) -> Any:
    module = ast.fix_missing_locations(ast.Module(body=[tree], type_ignores=[]))
    flags = __future__.annotations.compiler_flag
    code = compile(module, caller.__code__.co_filename, "exec", flags=flags, dont_inherit=True)
    (fn_code,) = (c for c in code.co_consts if isinstance(c, types.CodeType))
    fn = types.FunctionType(fn_code, caller.__globals__, caller.__name__, caller.__defaults__)
    fn.__kwdefaults__ = caller.__kwdefaults__
    fn.__qualname__, fn.__doc__, fn.__module__ = (
        caller.__qualname__,
        caller.__doc__,
        caller.__module__,
    )
    fn.__annotations__ = caller.__annotations__
    fn.__dict__[_TREE] = tree  # so that `fn` can be inlined in turn (never mutated)
    fn.__wrapped__ = caller  # type: ignore[attr-defined]  # as written (the fault sweep runs both)
    return fn


_TREE = "_inlined_tree"
