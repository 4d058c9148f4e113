"""Dynamic dispatch: which overrides of a method a ``New``'s module can see.

A closure lists the *dispatches* reachable from a function (calls of ``Base.render`` through
an object declared as a ``Base``), unexpanded: the overrides that may answer live in modules
that can see ``Base``, often importers not summarised yet. Each module keeps its *own
overrides*: for every ``Base.render``, the methods of its classes that override it and reach
something (a yield or a further dispatch); the ids of the modules it imports that have such
overrides at or below them (its *links*); and a *digest* of both and of those modules'
digests, and of what the overrides reach. A digest changes whenever an override is added,
removed or edited to reach something else anywhere below, so mypy re-checks exactly the
modules above it, while each module stores only its own part. At a ``New`` site, `visible`
gathers the overrides along the links from the ``New``'s module (its import closure).

Under the daemon nothing is stored (`daemon.py`): `visible` reads every module of the import
closure from its live AST, and counts every override, whether it reaches something or not.
Methods of classes from stubs (``list.append``) are not dispatches: overriding them to yield
is not worth storing a dispatch for every call to them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, Protocol

from mypy.nodes import Decorator, FuncBase, MypyFile

from .closure import Closure, to_json
from .symbols import classes, imported


class Links(NamedTuple):
    """What a module stores of the overrides it can see: see the module's docstring."""

    overrides: dict[str, list[str]]  # "pkg.Base.render" -> its overrides in this module
    links: list[str]  # the imported modules with overrides at or below them
    digest: str  # of both and of the linked modules' digests; "" when both are empty


NO_LINKS = Links({}, [], "")


class Source(Protocol):
    """What the overrides are computed from (the `Store`)."""

    modules: dict[str, MypyFile]

    def in_stub(self, fullname: str) -> bool: ...
    def closures(self, tree: MypyFile) -> dict[str, Closure]: ...
    def stored_data(self, tree: MypyFile) -> dict[str, Any] | None: ...
    def computable(self, tree: MypyFile) -> bool: ...


class Overrides:
    """The overrides of every module, computed from live ASTs or read back from the cache."""

    def __init__(self, source: Source, live: bool) -> None:
        self._source = source
        self._live = live
        # By module id, valid for that tree (and, when live, until `forget`).
        self._links_of: dict[str, tuple[MypyFile, Links]] = {}
        self._closure_of: dict[str, tuple[MypyFile, list[MypyFile]]] = {}

    def forget(self) -> None:
        """A module changed in place (under the daemon): what other modules see changes."""
        self._links_of.clear()
        self._closure_of.clear()

    def links(self, tree: MypyFile, closure_of: Callable[[str], Closure] | None = None) -> Links:
        """`tree`'s own overrides, links and digest (see the module's docstring); `closure_of`
        gives the closures of `tree`'s methods (computed when not given)."""
        data = None if self._live else self._source.stored_data(tree)
        if data is not None:
            return Links(data.get("overrides", {}), data.get("links", []), data.get("digest", ""))
        known = self._links_of.get(tree.fullname)
        if known is not None and known[0] is tree:
            return known[1]
        if not self._live and not self._source.computable(tree):
            return NO_LINKS  # from the cache or summarised, with nothing stored
        reach = closure_of or (lambda m: self._source.closures(tree).get(m, Closure()))
        own: dict[str, set[str]] = {}
        closures: dict[str, Closure] = {}
        for base, method in self._own(tree, None if self._live else reach, closures):
            own.setdefault(base, set()).add(method)
        overrides = {base: sorted(methods) for base, methods in sorted(own.items())}
        if self._live:
            links = Links(overrides, [], "")
        else:
            links = self._linked(tree, overrides, closures)
        self._links_of[tree.fullname] = (tree, links)
        return links

    def _linked(
        self, tree: MypyFile, overrides: dict[str, list[str]], closures: dict[str, Closure]
    ) -> Links:
        self._links_of[tree.fullname] = (tree, NO_LINKS)  # an import cycle comes back here
        below: dict[str, str] = {}
        for name in sorted(set(imported(tree))):
            other = self._source.modules.get(name)
            if other is not None and other is not tree:
                digest = self.links(other).digest
                if digest:
                    below[name] = digest
        if not overrides and not below:
            return NO_LINKS
        # The overrides' closures too: an edit of what one reaches must reach the New.
        text = json.dumps([overrides, to_json(closures), below], sort_keys=True)
        return Links(overrides, sorted(below), hashlib.sha1(text.encode()).hexdigest())

    def visible(self, tree: MypyFile) -> dict[str, set[str]]:
        """For each ``"pkg.Base.render"``, the overrides in `tree`'s import closure."""
        index: dict[str, set[str]] = {}
        for module in self._import_closure(tree):
            for base, methods in self.links(module).overrides.items():
                index.setdefault(base, set()).update(methods)
        return index

    def _import_closure(self, tree: MypyFile) -> list[MypyFile]:
        """The modules `tree` imports, directly or not, along the links (every import when
        live: kept until `forget`), `tree` included."""
        known = self._closure_of.get(tree.fullname)
        if self._live and known is not None and known[0] is tree:
            return known[1]
        modules = self._source.modules
        seen = {tree.fullname}
        todo, out = [tree], []
        while todo:
            module = todo.pop()
            out.append(module)
            names = imported(module) if self._live else self.links(module).links
            for name in names:
                other = modules.get(name)
                if other is not None and name not in seen:
                    seen.add(name)
                    todo.append(other)
        self._closure_of[tree.fullname] = (tree, out)
        return out

    def _own(
        self,
        tree: MypyFile,
        reach: Callable[[str], Closure] | None,
        closures: dict[str, Closure],
    ) -> Iterator[tuple[str, str]]:
        """``("pkg.Base.render", "mod.Loud.render")`` for each method of a class of `tree` (that
        reaches something, unless `reach` is None: its closure goes in `closures`), for each
        class above it (outside stubs) that also has the method. Constructors are left out:
        they are called by name, never dispatched."""
        for info in classes(tree.names, tree.fullname):
            for name, sym in info.names.items():
                if name in ("__init__", "__new__") or not isinstance(
                    sym.node, (FuncBase, Decorator)
                ):
                    continue
                bases = [
                    b
                    for b in info.mro[1:]
                    if b.get(name) is not None and not self._source.in_stub(b.fullname)
                ]
                method = sym.node.fullname
                closure = reach(method) if bases and reach is not None else None
                if closure is not None:
                    closures[method] = closure
                if bases and (reach is None or closure):
                    for base in bases:
                        yield f"{base.fullname}.{name}", method
