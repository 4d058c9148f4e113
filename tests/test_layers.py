"""The package's layers, read from its import graph: no circle, and the core imports only itself.

Every module of src/coroutine is parsed, and every import statement in it counts: at module
level, inside functions, and under ``if TYPE_CHECKING:`` alike (a type-only import is still
a dependency a reader has to follow). Importing a subpackage's module is an edge to that
module, not to the packages above it.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import coroutine

SRC = Path(coroutine.__file__).parent
PACKAGE = "coroutine"

CORE = {
    f"{PACKAGE}.{name}"
    for name in (
        "_accel",
        "_context",
        "_coroutine",
        "_driver",
        "_errors",
        "_lifecycle",
        "_new",
        "_run",
        "_signature",
        "_typecheck",
        "_worker",
        "_yield",
    )
}
"""The core: the coroutine runtime, which stands on no other part of the package."""

# The circle check covers the whole package (the workflow store contract once imported every
# backend; opening a store by URL now lives outside it, in `workflow/_url.py`).
CIRCLE_SCOPE = (PACKAGE,)
CIRCLE_EXCLUDED: tuple[str, ...] = ()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _is_package(name: str) -> bool:
    return MODULES.get(name, Path()).name == "__init__.py"


def imports_of(name: str) -> Iterator[str]:
    """The modules of the package that module `name` imports, anywhere in its source."""
    tree = ast.parse(MODULES[name].read_text(), str(MODULES[name]))
    package = name if _is_package(name) else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            # `from base import x` imports the module base.x if there is one, else base
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                for alias in node.names
            ]
        else:
            continue
        yield from (t for t in targets if t in MODULES)


GRAPH = {name: set(imports_of(name)) - {name} for name in MODULES}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_reader_sees_every_kind_of_import() -> None:
    # A late import, a type-only import and a relative import of a subpackage's module.
    assert f"{PACKAGE}._new" in GRAPH[f"{PACKAGE}.durable._continue"]  # inside a method
    assert f"{PACKAGE}._coroutine" in GRAPH[f"{PACKAGE}._yield"]  # under TYPE_CHECKING
    assert f"{PACKAGE}.durable._attach" in GRAPH[f"{PACKAGE}._durability"]
    assert f"{PACKAGE}.durable._codec" in GRAPH[f"{PACKAGE}.types"]
    assert set(CORE) <= set(GRAPH), set(CORE) - set(GRAPH)


def test_circles_are_found_where_there_are_some() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_no_module_of_the_package_imports_itself_back_through_others() -> None:
    scope = {
        name: {t for t in targets if not t.startswith(CIRCLE_EXCLUDED)}
        for name, targets in GRAPH.items()
        if name.startswith(CIRCLE_SCOPE) and not name.startswith(CIRCLE_EXCLUDED)
    }
    assert circles(scope) == []


def test_the_core_imports_only_the_core() -> None:
    above = {name: sorted(GRAPH[name] - CORE) for name in sorted(CORE) if GRAPH[name] - CORE}
    assert above == {}


def _loaded_after(code: str) -> set[str]:
    env = {k: v for k, v in os.environ.items() if k != "COROUTINE_DURABLE"}
    done = subprocess.run(
        [sys.executable, "-c", f"{code}; import sys; print(' '.join(sys.modules))"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return set(done.stdout.split())


def test_importing_the_package_loads_neither_durable_nor_workflow_nor_asyncio() -> None:
    loaded = _loaded_after("import coroutine")
    assert PACKAGE in loaded and f"{PACKAGE}._context" in loaded
    above = {m for m in loaded if m.startswith((f"{PACKAGE}.durable", f"{PACKAGE}.workflow"))}
    assert above == set()
    assert "asyncio" not in loaded


@pytest.mark.parametrize(
    "make",
    [
        "coroutine.New(f, durable=True)",
        "coroutine.New(f, version='1')",
    ],
)
def test_the_first_durable_coroutine_loads_the_durable_layer(make: str) -> None:
    code = f"import coroutine; from platform import python_version as f; {make}"
    assert f"{PACKAGE}.durable._attach" in _loaded_after(code)


def test_side_effect_and_patched_outside_a_durable_body_do_not_load_the_layer() -> None:
    code = (
        "import coroutine; assert coroutine.SideEffect(lambda: 6 * 7) == 42; "
        "assert coroutine.Patched('change') is True"
    )
    loaded = _loaded_after(code)
    assert not {m for m in loaded if m.startswith(f"{PACKAGE}.durable")}
