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

Dynamic dispatch. A closure also lists the *dispatches* reachable from the function, which
`expand` answers, at a ``New`` site, with the overrides the ``New``'s module can see
(`overrides.py`), following their closures in turn. So every module with code is summarised,
not only those that import ``coroutine``: a framework that never imports it still calls
methods that its users override to yield.

Under the daemon (``live=True``) nothing is stored: see `daemon.py`.
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any

from mypy.fixup import TypeFixer
from mypy.lookup import lookup_fully_qualified
from mypy.nodes import MypyFile, TypeInfo
from mypy.types import Type, deserialize_type

from . import daemon
from .callbacks import ANY_METHOD, every_method
from .closure import FORMAT, Closure, Reached, from_json, to_json
from .cycles import closures_of
from .overrides import Overrides
from .symbols import HIDDEN, attach, stored
from .walk import Facts, Site, declared_sites, module_facts

# Where mypy finds installed packages, whose function bodies it does not read.
_INSTALLED = ("/site-packages/", "/dist-packages/")


class Store:
    """The closures of every module this mypy process has seen, computed or read back; under
    the daemon (`live`), the facts of every live module instead."""

    def __init__(self, modules: dict[str, MypyFile], live: bool = False) -> None:
        self.modules = modules
        self.live = live
        # Facts of modules whose AST is alive, keyed by module id; valid for that tree.
        self._facts: dict[str, tuple[MypyFile, dict[str, Facts]]] = {}
        # The trees `summarize` has handled (or is handling), by module id.
        self._done: dict[str, MypyFile] = {}
        self._pending: set[str] = set()
        self._module_names: dict[str, str | None] = {}
        self._declared: dict[str, tuple[MypyFile, dict[str, list[Site]]]] = {}
        # Closures computed from live trees, by module id; valid for that tree.
        self._closures: dict[str, tuple[MypyFile, dict[str, Closure]]] = {}
        # Closures read back from stored data, by function; valid for that data.
        self._read: dict[str, tuple[dict[str, Any], Closure]] = {}
        self.overrides = Overrides(self, live)

    # -- writing -----------------------------------------------------------------------

    def summarize(self, tree: MypyFile) -> None:
        """Compute the closures of `tree`'s functions and keep them in its symbol table (under
        the daemon: the digest of its facts, see `daemon.py`)."""
        if self._done.get(tree.fullname) is tree:
            return
        self._done[tree.fullname] = tree
        if self.live:
            if tree.defs and not tree.is_stub:
                own = self.overrides.links(tree).overrides
                daemon.publish(tree, self.facts(tree), own, self.modules)
            return
        # Without `defs` (mypy 1.x frees them first when no hook saw the module: it has no
        # code to summarise) its links to the overrides below it still go on.
        if HIDDEN in tree.names or tree.is_stub:
            return
        self._pending.add(tree.fullname)
        try:
            closures = {name: c for name, c in sorted(self.closures(tree).items()) if c}
            links = self.overrides.links(tree, lambda name: closures.get(name, Closure()))
        finally:
            self._pending.discard(tree.fullname)
        if closures or links.digest:
            attach(tree, self.modules, {**to_json(closures), **links._asdict()}, "")

    def forget(self, tree: MypyFile) -> None:
        """Under the daemon: `tree` is read or analysed anew, in place."""
        self._facts.pop(tree.fullname, None)
        self._closures.pop(tree.fullname, None)
        self._declared.pop(tree.fullname, None)
        self._done.pop(tree.fullname, None)
        self.overrides.forget()

    def refresh(self, tree: MypyFile) -> None:
        """Under the daemon: `tree` was analysed anew, in place (whole or some targets)."""
        self.forget(tree)
        self.summarize(tree)

    def closures(self, tree: MypyFile) -> dict[str, Closure]:
        """The closure of every function of `tree`, whose AST is alive (once per tree: the
        overrides of a module of an import cycle need them before it is summarised)."""
        known = self._closures.get(tree.fullname)
        if known is None or known[0] is not tree:
            reach = lambda f, known: self.reach_from(f, known=known)  # noqa: E731
            known = self._closures[tree.fullname] = (tree, closures_of(self.facts(tree), reach))
        return known[1]

    def facts(self, tree: MypyFile) -> dict[str, Facts]:
        known = self._facts.get(tree.fullname)
        if known is not None and known[0] is tree:
            return known[1]
        facts = module_facts(tree, self)
        for f in facts.values():
            f.dispatches = {m for m in f.dispatches if not self.in_stub(m)}
        self._facts[tree.fullname] = (tree, facts)
        return facts

    def in_stub(self, fullname: str) -> bool:
        """Whether `fullname` is defined in a stub (or in no module mypy knows)."""
        tree = self._module_of(fullname)
        return tree is None or tree.is_stub

    def opaque(self, fullname: str) -> bool:
        """Whether `fullname` is defined where mypy reads no bodies: a stub, an installed
        package (decided by its path, which the cache keeps)."""
        tree = self._module_of(fullname)
        return tree is None or tree.is_stub or any(p in tree.path for p in _INSTALLED)

    def builtin(self, name: str) -> TypeInfo | None:
        """The class ``builtins.<name>``."""
        builtins = self.modules.get("builtins")
        sym = builtins.names.get(name) if builtins is not None else None
        return sym.node if sym is not None and isinstance(sym.node, TypeInfo) else None

    def stored_data(self, tree: MypyFile) -> dict[str, Any] | None:
        """What `summarize` stored for `tree` (None: nothing; {}: of another format)."""
        return stored(tree, FORMAT)

    def computable(self, tree: MypyFile) -> bool:
        """Whether `tree`'s AST is alive and its closures are not stored (being computed)."""
        return tree.fullname in self._pending or (
            bool(tree.defs) and self._done.get(tree.fullname) is not tree
        )

    # -- reading -----------------------------------------------------------------------

    def reach_from(
        self, start: str, facts: Facts | None = None, known: dict[str, Closure] | None = None
    ) -> Closure:
        """Every yield site and dispatch reachable from function `start` (or from `facts`)
        through direct calls, shortest path first, but through the functions whose closures
        are `known` (then the path goes through them)."""
        found = Closure()
        first = facts if facts is not None else self._local(start)
        if first is None:
            found.add(self._stored(start))
            return found
        found.add_facts(first, start, ())
        queue: deque[tuple[str, tuple[str, ...]]] = deque()
        seen = {start}

        def follow(facts: Facts, path: tuple[str, ...]) -> None:
            for e in sorted(facts.edges):
                if e not in seen:
                    seen.add(e)
                    queue.append((e, (*path, *facts.path_to(e), e)))

        follow(first, ())
        while queue:
            name, path = queue.popleft()
            closure = known.get(name) if known is not None else None
            local = self._local(name) if closure is None else None
            if closure is not None:
                found.add(closure, path)
            elif local is None:
                found.add(self._stored(name), path)
            else:
                found.add_facts(local, name, path)
                follow(local, path)
        return found

    def expand(self, found: Closure, tree: MypyFile | None) -> list[Reached]:
        """The yields of `found` and those reachable through its dispatches: each may run any
        override in the index of `tree`, the module of the ``New`` being checked."""
        index = self.overrides.visible(tree) if tree is not None else {}
        queue = deque(found.dispatches.values())
        seen: set[str] = set()
        while queue:
            d = queue.popleft()
            for method in sorted(self._answers(index, d.method)):
                if method in seen:
                    continue
                seen.add(method)
                more = Closure()
                more.add(self.reach_from(method), (*d.path, method))
                found.add(more)
                queue.extend(more.dispatches.values())
        return list(found.yields.values())

    def _answers(self, index: dict[str, set[str]], dispatch: str) -> set[str]:
        """The methods that may answer `dispatch`: ``Base.render``'s overrides, or, for
        ``C.*``, every method of ``C`` and every override of one."""
        if not dispatch.endswith(f".{ANY_METHOD}"):
            return index.get(dispatch, set())
        prefix = dispatch[:-1]
        found: set[str] = set()
        for method, overrides in index.items():
            if method.startswith(prefix) and "." not in method[len(prefix) :]:
                found |= overrides
        sym = lookup_fully_qualified(prefix[:-1], self.modules, raise_on_missing=False)
        if sym is not None and isinstance(sym.node, TypeInfo):
            found.update(every_method(sym.node, self))
        return found

    def _module_of(self, fullname: str) -> MypyFile | None:
        """The module that defines `fullname` (looked up anew: the daemon replaces trees)."""
        try:
            name = self._module_names[fullname]
        except KeyError:
            name = fullname
            while "." in name and name not in self.modules:
                name = name.rpartition(".")[0]
            self._module_names[fullname] = name = name if name in self.modules else None
        return self.modules.get(name) if name is not None else None

    def _local(self, fullname: str) -> Facts | None:
        """Facts of a function whose module's AST is alive and not yet summarised (under the
        daemon: alive)."""
        tree = self._module_of(fullname)
        if tree is None or not tree.defs or tree.is_stub:
            return None
        if not self.live and (HIDDEN in tree.names or not self.computable(tree)):
            return None  # stored, or summarised with nothing reachable
        return self.facts(tree).get(fullname, Facts())

    def _stored(self, fullname: str) -> Closure:
        """The closure of a function of a summarised module (read back once per data)."""
        found = Closure()
        tree = self._module_of(fullname)
        if tree is None:
            return found
        data = None if self.live else self.stored_data(tree)
        if data is None:
            found.add_facts(Facts(sites=self._declared_only(tree, fullname)), fullname, ())
            return found
        known = self._read.get(fullname)
        if known is None or known[0] is not data:
            known = self._read[fullname] = (data, from_json(data, fullname))
        return known[1]

    def _declared_only(self, tree: MypyFile, fullname: str) -> list[Site]:
        """A module never summarised here (a stub, or an installed package on mypy 1.x):
        only its ``__coroutine_yields__`` declarations are known."""
        known = self._declared.get(tree.fullname)
        if known is None or known[0] is not tree:
            known = self._declared[tree.fullname] = (tree, declared_sites(tree))
        return known[1].get(fullname, [])

    def load_type(self, data: str) -> Type:
        t = deserialize_type(json.loads(data))
        t.accept(TypeFixer(self.modules, allow_missing=True))
        return t
