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

Dynamic dispatch. A closure also lists the *dispatches* reachable from the function (calls of
``Base.render`` through an object declared as a ``Base``), unexpanded: the overrides that may
answer live in modules that can see ``Base``, often importers not summarised yet. Each module
keeps its *own overrides*: for every ``Base.render``, the methods of its classes that override
it and reach something (a yield or a further dispatch); the ids of the modules it imports that
have such overrides at or below them (its *links*); and a *digest* of both and of those
modules' digests, and of what the overrides reach. A digest changes whenever an override is
added, removed or edited to reach something else anywhere below, so mypy re-checks exactly
the modules above it, while each module stores only its own part.
At a ``New`` site, `expand` gathers the overrides along the links from the ``New``'s module
(its import closure), answers each dispatch with them, and follows their closures in turn.
So every module with code is summarised, not only those that import ``coroutine``: a
framework that never imports it still calls methods that its users override to yield.
Methods of classes from stubs (``list.append``) are not dispatches: overriding them to yield
is not worth storing a dispatch for every call to them.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from mypy.fixup import TypeFixer
from mypy.nodes import (
    GDEF,
    Block,
    ClassDef,
    Decorator,
    FuncBase,
    Import,
    ImportAll,
    ImportFrom,
    MypyFile,
    SymbolTable,
    SymbolTableNode,
    TypeInfo,
)
from mypy.types import Instance, Type, deserialize_type
from mypy.util import correct_relative_import

from .closure import FORMAT, Closure, Reached, from_json, to_json
from .walk import Facts, Site, declared_sites, module_facts

HIDDEN = "__coroutine_reach__"
KEY = "coroutine"


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
        # `_Links` of live trees, by module id; valid for that tree.
        self._links_of: dict[str, tuple[MypyFile, _Links]] = {}

    # -- writing -----------------------------------------------------------------------

    def summarize(self, tree: MypyFile) -> None:
        """Compute the closures of `tree`'s functions and keep them in its symbol table."""
        if self._done.get(tree.fullname) is tree:
            return
        self._done[tree.fullname] = tree
        # Without `defs` (mypy 1.x frees them first when no hook saw the module: it has no
        # code to summarise) its links to the overrides below it still go on.
        if HIDDEN in tree.names or tree.is_stub:
            return
        self._pending.add(tree.fullname)
        try:
            closures = {name: self.reach_from(name) for name in sorted(self.facts(tree))}
            closures = {name: c for name, c in closures.items() if c}
            links = self._links(tree, lambda name: closures.get(name, Closure()))
        finally:
            self._pending.discard(tree.fullname)
        if closures or links.digest:
            self._attach(tree, {**to_json(closures), **links._asdict()})

    def facts(self, tree: MypyFile) -> dict[str, Facts]:
        known = self._facts.get(tree.fullname)
        if known is not None and known[0] is tree:
            return known[1]
        facts = module_facts(tree)
        for f in facts.values():
            f.dispatches = {m for m in f.dispatches if not self._in_stub(m)}
        self._facts[tree.fullname] = (tree, facts)
        return facts

    def _in_stub(self, fullname: str) -> bool:
        tree = self._module_of(fullname)
        return tree is None or tree.is_stub

    def _links(self, tree: MypyFile, closure_of: Callable[[str], Closure] | None = None) -> _Links:
        """`tree`'s own overrides, links and digest (see the module's docstring); `closure_of`
        gives the closures of `tree`'s methods (computed when not given)."""
        if HIDDEN in tree.names:
            data = self._data(tree)
            return _Links(data.get("overrides", {}), data.get("links", []), data.get("digest", ""))
        known = self._links_of.get(tree.fullname)
        if known is not None and known[0] is tree:
            return known[1]
        if tree.fullname not in self._pending and (
            not tree.defs or self._done.get(tree.fullname) is tree
        ):
            return _NO_LINKS  # from the cache or summarised, with nothing stored
        own: dict[str, set[str]] = {}
        closures: dict[str, Closure] = {}
        for base, method in self._own_overrides(tree, closure_of or self.reach_from, closures):
            own.setdefault(base, set()).add(method)
        self._links_of[tree.fullname] = (tree, _NO_LINKS)  # an import cycle comes back here
        below: dict[str, str] = {}
        for name in sorted(set(_imported(tree))):
            other = self.modules.get(name)
            if other is not None and other is not tree:
                digest = self._links(other).digest
                if digest:
                    below[name] = digest
        overrides = {base: sorted(methods) for base, methods in sorted(own.items())}
        links = _Links(overrides, sorted(below), "")
        if overrides or below:
            # The overrides' closures too: an edit of what one reaches must reach the New.
            text = json.dumps([overrides, to_json(closures), below], sort_keys=True)
            links = links._replace(digest=hashlib.sha1(text.encode()).hexdigest())
        self._links_of[tree.fullname] = (tree, links)
        return links

    def visible(self, tree: MypyFile) -> dict[str, set[str]]:
        """For each ``"pkg.Base.render"``, the overrides in `tree`'s import closure."""
        index: dict[str, set[str]] = {}
        seen = {tree.fullname}
        todo = [tree]
        while todo:
            links = self._links(todo.pop())
            for base, methods in links.overrides.items():
                index.setdefault(base, set()).update(methods)
            for name in links.links:
                other = self.modules.get(name)
                if other is not None and name not in seen:
                    seen.add(name)
                    todo.append(other)
        return index

    def _own_overrides(
        self, tree: MypyFile, closure_of: Callable[[str], Closure], closures: dict[str, Closure]
    ) -> Iterator[tuple[str, str]]:
        """``("pkg.Base.render", "mod.Loud.render")`` for each method of a class of `tree` that
        reaches something (its closure goes in `closures`), for each class above it (outside
        stubs) that also has the method. Constructors are left out: they are called by name,
        never dispatched."""
        for info in _classes(tree.names, tree.fullname):
            for name, sym in info.names.items():
                if name in ("__init__", "__new__") or not isinstance(
                    sym.node, (FuncBase, Decorator)
                ):
                    continue
                bases = [
                    b
                    for b in info.mro[1:]
                    if b.get(name) is not None and not self._in_stub(b.fullname)
                ]
                method = sym.node.fullname
                if bases and (closure := closure_of(method)):
                    closures[method] = closure
                    for base in bases:
                        yield f"{base.fullname}.{name}", method

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

    def reach_from(self, start: str, facts: Facts | None = None) -> Closure:
        """Every yield site and dispatch reachable from function `start` (or from `facts`)
        through direct calls, shortest path first."""
        found = Closure()
        first = facts if facts is not None else self._local(start)
        if first is None:
            found.add(self._stored(start))
            return found
        found.add_facts(first, start, ())
        queue: deque[tuple[str, tuple[str, ...]]] = deque()
        seen = {start}

        def follow(edges: set[str], path: tuple[str, ...]) -> None:
            for e in sorted(edges):
                if e not in seen:
                    seen.add(e)
                    queue.append((e, (*path, e)))

        follow(first.edges, ())
        while queue:
            name, path = queue.popleft()
            local = self._local(name)
            if local is None:
                found.add(self._stored(name), path)
            else:
                found.add_facts(local, name, path)
                follow(local.edges, path)
        return found

    def expand(self, found: Closure, tree: MypyFile | None) -> list[Reached]:
        """The yields of `found` and those reachable through its dispatches: each may run any
        override in the index of `tree`, the module of the ``New`` being checked."""
        index = self.visible(tree) if tree is not None else {}
        queue = deque(found.dispatches.values())
        seen: set[str] = set()
        while queue:
            d = queue.popleft()
            for method in sorted(index.get(d.method, ())):
                if method in seen:
                    continue
                seen.add(method)
                more = Closure()
                more.add(self.reach_from(method), (*d.path, method))
                found.add(more)
                queue.extend(more.dispatches.values())
        return list(found.yields.values())

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

    def _data(self, tree: MypyFile) -> dict[str, Any]:
        sym = tree.names.get(HIDDEN)
        if sym is None or not isinstance(sym.node, TypeInfo):
            return {}
        data: dict[str, Any] = sym.node.metadata.get(KEY, {})
        return data if data.get("format") == FORMAT else {}

    def _stored(self, fullname: str) -> Closure:
        found = Closure()
        tree = self._module_of(fullname)
        if tree is None:
            return found
        if HIDDEN not in tree.names:
            found.add_facts(Facts(sites=self._declared_only(tree, fullname)), fullname, ())
            return found
        return from_json(self._data(tree), fullname)

    def _declared_only(self, tree: MypyFile, fullname: str) -> list[Site]:
        """A module never summarised here (a stub, or an installed package on mypy 1.x):
        only its ``__coroutine_yields__`` declarations are known."""
        declared = self._declared_cache.get(tree.fullname)
        if declared is None:
            declared = self._declared_cache[tree.fullname] = declared_sites(tree)
        return declared.get(fullname, [])

    def load_type(self, data: str) -> Type:
        t = deserialize_type(json.loads(data))
        t.accept(TypeFixer(self.modules, allow_missing=True))
        return t


class _Links(NamedTuple):
    """What a module stores of the overrides it can see: see the module's docstring."""

    overrides: dict[str, list[str]]  # "pkg.Base.render" -> its overrides in this module
    links: list[str]  # the imported modules with overrides at or below them
    digest: str  # of both and of the linked modules' digests; "" when both are empty


_NO_LINKS = _Links({}, [], "")


def _classes(names: SymbolTable, prefix: str) -> Iterator[TypeInfo]:
    """The classes defined (not imported) in a module or class, nested ones included."""
    for name, sym in names.items():
        if isinstance(sym.node, TypeInfo) and sym.node.fullname == f"{prefix}.{name}":
            yield sym.node
            yield from _classes(sym.node.names, sym.node.fullname)


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
