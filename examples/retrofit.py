"""Retrofit: turn an existing recursive visitor into a lazy iterator with one added line.

`FunctionFinder` below is ordinary code that walks a Python syntax tree with
`ast.NodeVisitor`, recursing through `generic_visit`, a method of the standard library
we do not own. To make it lazy with Python generators, every level of the recursion would
have to become a generator and say `yield from` (see `generator_version`), including the
standard library's `generic_visit`, which we would have to rewrite. With `coroutine`, the
visitor gains one line, `Yield[...]`, and nothing else changes: no signature, no caller.

Run it: ``python examples/retrofit.py``
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Iterator

from coroutine import New, Yield


class FunctionFinder(ast.NodeVisitor):
    """Existing code: records every function definition in a syntax tree."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.found.append(node.name)
        Yield[str, None](node.name)  # the retrofit: the only line added
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef


def functions_in(source: str) -> Iterator[str]:
    """Lazily, the names of the functions defined in `source`, in order of appearance."""
    tree = ast.parse(source)
    return iter(New[str, None](lambda: FunctionFinder().visit(tree)))


def generator_version(node: ast.AST) -> Iterator[str]:
    """What the same walk looks like with plain generators: every level must `yield from`,
    and `ast.NodeVisitor` cannot be used at all."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        yield node.name
    for child in ast.iter_child_nodes(node):
        yield from generator_version(child)


def main() -> None:
    import json  # any module will do: walk the standard library's json package

    source = inspect.getsource(json)
    names = functions_in(source)
    first = [next(names) for _ in range(3)]
    print("first three functions in json/__init__.py:", ", ".join(first))
    print("(the walk paused there: the rest of the tree was not visited until asked for)")
    rest = list(names)
    print(f"the remaining {len(rest)} found on demand:", ", ".join(rest))
    same = first + rest == list(generator_version(ast.parse(source)))
    print("same as the generator version:", same)


if __name__ == "__main__":
    main()
