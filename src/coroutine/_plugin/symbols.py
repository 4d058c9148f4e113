"""What the plugin reads from and writes to a module's symbol table.

It writes one thing: a hidden class, ``__coroutine_reach__@``, whose ``metadata`` holds what
the module's functions reach (`store.py`) or, under the daemon, a digest of its facts
(`daemon.py`). mypy serialises it with the module and hashes it into the module's interface;
the daemon compares it, as every symbol, before and after a module is processed again. Users
never see it: its name is no identifier (as those mypy gives local classes, ``C@12``), so no
code can name it, and it is not public, so ``import *`` skips it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mypy.nodes import (
    GDEF,
    MDEF,
    Block,
    ClassDef,
    Import,
    ImportAll,
    ImportFrom,
    MypyFile,
    SymbolTable,
    SymbolTableNode,
    TypeInfo,
    Var,
)
from mypy.types import Instance, LiteralType
from mypy.util import correct_relative_import

HIDDEN = "__coroutine_reach__@"
KEY = "coroutine"
MARK = "digest"


def attach(tree: MypyFile, modules: dict[str, MypyFile], data: dict[str, Any], mark: str) -> None:
    """Put `data` in `tree`'s hidden class (replacing any), with an attribute `MARK` of type
    ``Literal[mark]`` unless `mark` (a digest) is "": the daemon sees a change of an
    attribute's type, not of a class's metadata."""
    builtins = modules.get("builtins")
    if builtins is None:
        return
    obj = builtins.names.get("object")
    if obj is None or not isinstance(obj.node, TypeInfo):
        return
    defn = ClassDef(HIDDEN, Block([]))
    defn.fullname = f"{tree.fullname}.{HIDDEN}"
    info = TypeInfo(SymbolTable(), defn, tree.fullname)
    defn.info = info
    info.bases = [Instance(obj.node, [])]
    info.mro = [info, obj.node]
    info.metadata[KEY] = data
    text = builtins.names.get("str")
    if mark and text is not None and isinstance(text.node, TypeInfo):
        var = Var(MARK, LiteralType(mark, Instance(text.node, [])))
        var.info = info
        var._fullname = f"{defn.fullname}.{MARK}"
        info.names[MARK] = SymbolTableNode(MDEF, var, plugin_generated=True)
    # Not public: no `import *` copies it (and its name is no identifier).
    tree.names[HIDDEN] = SymbolTableNode(
        GDEF, info, module_public=False, module_hidden=True, plugin_generated=True
    )


def stored(tree: MypyFile, version: int) -> dict[str, Any] | None:
    """The data in `tree`'s hidden class, if it has one: {} if of another `version`."""
    sym = tree.names.get(HIDDEN)
    if sym is None or not isinstance(sym.node, TypeInfo):
        return None
    data: dict[str, Any] = sym.node.metadata.get(KEY, {})
    return data if data.get("format") == version else {}


def classes(names: SymbolTable, prefix: str) -> Iterator[TypeInfo]:
    """The classes defined (not imported) in a module or class, nested ones included."""
    for name, sym in names.items():
        if isinstance(sym.node, TypeInfo) and sym.node.fullname == f"{prefix}.{name}":
            yield sym.node
            yield from classes(sym.node.names, sym.node.fullname)


def imported(tree: MypyFile) -> Iterator[str]:
    """Ids of the modules `tree` imports (anywhere in it), relative imports resolved."""
    is_init = tree.path.endswith(("__init__.py", "__init__.pyi"))
    for imp in tree.imports:
        if isinstance(imp, Import):
            for name, _ in imp.ids:
                yield name
            continue
        if not isinstance(imp, (ImportFrom, ImportAll)):
            continue
        base, _ = correct_relative_import(tree.fullname, imp.relative, imp.id, is_init)
        yield base
        if isinstance(imp, ImportFrom):
            for name, _ in imp.names:
                yield f"{base}.{name}"
