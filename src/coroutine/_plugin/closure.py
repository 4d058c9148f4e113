"""What a function can reach, as the plugin keeps it: yield sites and dispatches with the path
of calls to each, and their JSON form in mypy's cache (see `store.py`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from mypy.types import Type
from mypy.typevars import has_no_typevars

from .walk import Facts, Site

FORMAT = 2
"""The version of the stored data: data of another version is ignored."""


@dataclass(frozen=True)
class Reached:
    """A yield site reachable from a function: the pair, where it is, and how we got there."""

    kind: str
    r: str  # the type, as mypy's JSON serialisation
    s: str
    site: str  # fullname of the function that contains the yield
    path: tuple[str, ...]  # the calls from the function to `site`, `site` included

    @property
    def key(self) -> tuple[str, str, str, str]:
        """What makes two sites one, whatever the path."""
        return self.kind, self.r, self.s, self.site


@dataclass(frozen=True)
class Dispatch:
    """A call of `method` (``"pkg.mod.Base.render"``) through an object declared as that class,
    reachable from a function; `path` is the calls from the function to the caller."""

    method: str
    path: tuple[str, ...]


@dataclass
class Closure:
    """What a function can reach: yield sites and dispatches, each once, shortest path first."""

    yields: dict[tuple[str, str, str, str], Reached] = field(default_factory=dict)
    dispatches: dict[str, Dispatch] = field(default_factory=dict)

    def add(self, other: Closure, prefix: tuple[str, ...] = ()) -> None:
        """Add what `other`, the closure of the function reached by `prefix`, reaches."""
        for key, r in other.yields.items():
            if key not in self.yields:
                self.yields[key] = replace(r, path=(*prefix, *r.path))
        for method, d in other.dispatches.items():
            if method not in self.dispatches:
                self.dispatches[method] = Dispatch(method, (*prefix, *d.path))

    def add_facts(self, facts: Facts, here: str, path: tuple[str, ...]) -> None:
        """Add the sites and dispatches of function `here`, reached by `path`."""
        for r in reached_sites(facts.sites, here):
            self.yields.setdefault(r.key, replace(r, path=path))
        for method in sorted(facts.dispatches):
            via = facts.path_to(method, dispatch=True)
            self.dispatches.setdefault(method, Dispatch(method, (*path, *via)))

    def __bool__(self) -> bool:
        return bool(self.yields or self.dispatches)


def ser(t: Type) -> str:
    """`t` as text that names it exactly (mypy's JSON serialisation)."""
    return json.dumps(t.serialize(), sort_keys=True)


def reached_sites(sites: list[Site], here: str) -> list[Reached]:
    """The direct sites of function `here`; generic ones (``Yield[T, T]``) are left out."""
    return [
        Reached(s.kind, ser(s.r), ser(s.s), here, ())
        for s in sites
        if has_no_typevars(s.r) and has_no_typevars(s.s)
    ]


def to_json(closures: dict[str, Closure]) -> dict[str, Any]:
    """What a module keeps of its functions' closures."""
    return {
        "format": FORMAT,
        "closures": {
            name: [[r.kind, r.r, r.s, r.site, list(r.path)] for r in c.yields.values()]
            for name, c in closures.items()
            if c.yields
        },
        "dispatches": {
            name: [[d.method, list(d.path)] for d in c.dispatches.values()]
            for name, c in closures.items()
            if c.dispatches
        },
    }


def from_json(data: dict[str, Any], name: str) -> Closure:
    """The closure of function `name` in the data `to_json` made for its module."""
    found = Closure()
    for kind, r, s, site, path in data.get("closures", {}).get(name, ()):
        reached = Reached(kind, r, s, site, tuple(path))
        found.yields.setdefault(reached.key, reached)
    for method, path in data.get("dispatches", {}).get(name, ()):
        found.dispatches.setdefault(method, Dispatch(method, tuple(path)))
    return found
