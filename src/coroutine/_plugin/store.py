"""Reachable yields per function, kept in mypy's cache so they outlive the AST.

Theory of operation. mypy frees function bodies once a module is processed and loads
unchanged modules from its cache without bodies, so the reachability check cannot walk
from a ``New(...)`` into other modules. Instead, while a module's AST is alive, `summarize`
computes for each of its functions the *closure*: every yield site reachable from it, with
the path of calls, following edges into modules already summarised (their closures are
read back) or still alive (same import cycle). The closures are JSON in the ``metadata`` of
a hidden class that the plugin adds to the module's symbol table: mypy serialises it with the
module and hashes it into the module's interface, so importers are re-checked exactly when a
closure changes. The JSON holds fullnames and types, never line numbers, so a cosmetic edit
changes nothing an importer sees.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mypy.fixup import TypeFixer
from mypy.nodes import (
    GDEF,
    Block,
    ClassDef,
    Import,
    ImportAll,
    ImportFrom,
    MypyFile,
    SymbolTable,
    SymbolTableNode,
    TypeInfo,
)
from mypy.types import Instance, Type, deserialize_type
from mypy.typevars import has_no_typevars
from mypy.util import correct_relative_import

from .walk import DECLARATIONS, Facts, Site, declared_sites, module_facts

HIDDEN = "__coroutine_reach__"
KEY = "coroutine"
FORMAT = 1


@dataclass(frozen=True)
class Reached:
    """A yield site reachable from a function: the pair, where it is, and how we got there."""

    kind: str
    r: str  # the type, as mypy's JSON serialisation
    s: str
    site: str  # fullname of the function that contains the yield
    path: tuple[str, ...]  # the calls from the function to `site`, `site` included

    def to_json(self) -> list[Any]:
        return [self.kind, self.r, self.s, self.site, list(self.path)]

    @staticmethod
    def from_json(data: list[Any]) -> Reached:
        kind, r, s, site, path = data
        return Reached(kind, r, s, site, tuple(path))


def _ser(t: Type) -> str:
    return json.dumps(t.serialize(), sort_keys=True)


def reached_sites(sites: list[Site], here: str) -> list[Reached]:
    """The direct sites of function `here`; generic ones (``Yield[T, T]``) are left out."""
    return [
        Reached(s.kind, _ser(s.r), _ser(s.s), here, ())
        for s in sites
        if has_no_typevars(s.r) and has_no_typevars(s.s)
    ]


class Store:
    """The closures of every module this mypy process has seen, computed or read back."""

    def __init__(self, modules: dict[str, MypyFile]) -> None:
        self.modules = modules
        # Facts of modules whose AST is alive, keyed by module id; valid for that tree.
        self._facts: dict[str, tuple[MypyFile, dict[str, Facts]]] = {}
        # The trees `summarize` has handled (or is handling), by module id.
        self._done: dict[str, MypyFile] = {}
        self._pending: set[str] = set()
        self._module_cache: dict[str, MypyFile | None] = {}
        self._declared_cache: dict[str, dict[str, list[Site]]] = {}

    # -- writing -----------------------------------------------------------------------

    def summarize(self, tree: MypyFile) -> None:
        """Compute the closures of `tree`'s functions and keep them in its symbol table."""
        if self._done.get(tree.fullname) is tree:
            return
        self._done[tree.fullname] = tree
        if HIDDEN in tree.names or not tree.defs or tree.is_stub:
            return
        self._pending.add(tree.fullname)
        try:
            if not self._needs(tree):
                return
            facts = self.facts(tree)
            closures: dict[str, list[list[Any]]] = {}
            for fullname in sorted(facts):
                found = self.reach_from(fullname)
                if found:
                    closures[fullname] = [r.to_json() for r in found]
        finally:
            self._pending.discard(tree.fullname)
        if closures:
            self._attach(tree, {"format": FORMAT, "closures": closures})

    def _needs(self, tree: MypyFile) -> bool:
        """Whether a function of `tree` can reach a yield at all: only if the module imports
        `coroutine`, or a module whose functions reach yields or that declares some. This
        spares the walk of every module of a project that has nothing to do with us."""
        for name in _imported(tree):
            if name == "coroutine" or name.startswith("coroutine."):
                return True
            other = self.modules.get(name)
            if other is None or other is tree:
                continue
            if name in self._pending:
                return True  # same import cycle, being summarised: assume it may yield
            if self._done.get(name) is not other and other.defs and not other.is_stub:
                self.summarize(other)  # same import cycle, not summarised yet
            if HIDDEN in other.names or DECLARATIONS in other.names:
                return True
        return False

    def facts(self, tree: MypyFile) -> dict[str, Facts]:
        known = self._facts.get(tree.fullname)
        if known is not None and known[0] is tree:
            return known[1]
        facts = module_facts(tree)
        self._facts[tree.fullname] = (tree, facts)
        return facts

    def _attach(self, tree: MypyFile, data: dict[str, Any]) -> None:
        builtins = self.modules.get("builtins")
        obj = builtins.names.get("object") if builtins is not None else None
        if obj is None or not isinstance(obj.node, TypeInfo):
            return
        defn = ClassDef(HIDDEN, Block([]))
        defn.fullname = f"{tree.fullname}.{HIDDEN}"
        info = TypeInfo(SymbolTable(), defn, tree.fullname)
        defn.info = info
        info.bases = [Instance(obj.node, [])]
        info.mro = [info, obj.node]
        info.metadata[KEY] = data
        tree.names[HIDDEN] = SymbolTableNode(GDEF, info, plugin_generated=True)

    # -- reading -----------------------------------------------------------------------

    def reach_from(self, start: str, facts: Facts | None = None) -> list[Reached]:
        """Every yield site reachable from function `start` (or from `facts`), shortest path
        first, one entry per (pair, site)."""
        found: dict[tuple[str, str, str, str], Reached] = {}

        def add(r: Reached) -> None:
            found.setdefault((r.kind, r.r, r.s, r.site), r)

        first = facts if facts is not None else self._local(start)
        queue: deque[tuple[str, tuple[str, ...]]] = deque()
        seen = {start}
        if first is not None:
            for r in reached_sites(first.sites, start):
                add(r)
            for e in sorted(first.edges):
                if e not in seen:
                    seen.add(e)
                    queue.append((e, (e,)))
        else:
            for r in self._stored(start):
                add(r)
        while queue:
            name, path = queue.popleft()
            local = self._local(name)
            if local is None:
                for r in self._stored(name):
                    add(Reached(r.kind, r.r, r.s, r.site, (*path[:-1], name, *r.path)))
                continue
            for r in reached_sites(local.sites, name):
                add(Reached(r.kind, r.r, r.s, r.site, path))
            for e in sorted(local.edges):
                if e not in seen:
                    seen.add(e)
                    queue.append((e, (*path, e)))
        return list(found.values())

    def _module_of(self, fullname: str) -> MypyFile | None:
        try:
            return self._module_cache[fullname]
        except KeyError:
            pass
        found = None
        mod = fullname
        while "." in mod:
            mod = mod.rpartition(".")[0]
            found = self.modules.get(mod)
            if found is not None:
                break
        self._module_cache[fullname] = found
        return found

    def _local(self, fullname: str) -> Facts | None:
        """Facts of a function whose module's AST is alive and not yet summarised."""
        tree = self._module_of(fullname)
        if tree is None or HIDDEN in tree.names or not tree.defs or tree.is_stub:
            return None
        if self._done.get(tree.fullname) is tree and tree.fullname not in self._pending:
            return None  # summarised: nothing reachable (or it would have HIDDEN)
        return self.facts(tree).get(fullname, Facts())

    def _stored(self, fullname: str) -> list[Reached]:
        tree = self._module_of(fullname)
        if tree is None:
            return []
        sym = tree.names.get(HIDDEN)
        if sym is None or not isinstance(sym.node, TypeInfo):
            return self._declared_only(tree, fullname)
        data = sym.node.metadata.get(KEY, {})
        if data.get("format") != FORMAT:
            return []
        return [Reached.from_json(x) for x in data["closures"].get(fullname, ())]

    def _declared_only(self, tree: MypyFile, fullname: str) -> list[Reached]:
        """A module never summarised here (a stub, or an installed package on mypy 1.x):
        only its ``__coroutine_yields__`` declarations are known."""
        declared = self._declared_cache.get(tree.fullname)
        if declared is None:
            declared = self._declared_cache[tree.fullname] = declared_sites(tree)
        return reached_sites(declared.get(fullname, []), fullname)

    def load_type(self, data: str) -> Type:
        t = deserialize_type(json.loads(data))
        t.accept(TypeFixer(self.modules, allow_missing=True))
        return t


def _imported(tree: MypyFile) -> Iterator[str]:
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
