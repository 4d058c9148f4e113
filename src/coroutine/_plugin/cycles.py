"""Computing a module's closures once per cycle of calls.

`Store.summarize` needs the closure of every function of a module. Computed one breadth-first
walk per function, a cycle of k functions that call each other (the methods of a class, through
``self``) is walked k times over. Instead the functions are grouped into their strongly
connected components (Tarjan's algorithm over the calls within the module), taken callees
first: one walk gives the closure of the component's first function, which reaches all that
any member reaches; every other member gets its own sites and that closure, behind the
shortest path of calls from the member to the first function. The paths so found are valid
call paths, if not always the shortest.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator

from .closure import Closure
from .walk import Facts


def closures_of(
    facts: dict[str, Facts], reach: Callable[[str, dict[str, Closure]], Closure]
) -> dict[str, Closure]:
    """The closure of every function in `facts`; ``reach(name, known)`` walks from one,
    using the closures already `known`."""
    known: dict[str, Closure] = {}
    for members in _components(facts):
        first = members[0]
        known[first] = reach(first, known)
        for member, path in _paths_to(first, members, facts).items():
            closure = Closure()
            closure.add_facts(facts[member], member, ())
            closure.add(known[first], path)
            known[member] = closure
    return known


def _components(facts: dict[str, Facts]) -> Iterator[list[str]]:
    """The strongly connected components of the calls between `facts`' functions, each
    sorted, callees first (iterative Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    for root in sorted(facts):
        if root in index:
            continue
        work = [(root, iter(sorted(e for e in facts[root].edges if e in facts)))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            name, edges = work[-1]
            for e in edges:
                if e not in index:
                    index[e] = low[e] = len(index)
                    stack.append(e)
                    on_stack.add(e)
                    work.append((e, iter(sorted(x for x in facts[e].edges if x in facts))))
                    break
                if e in on_stack:
                    low[name] = min(low[name], index[e])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[name])
                if low[name] == index[name]:
                    members = []
                    while True:
                        m = stack.pop()
                        on_stack.discard(m)
                        members.append(m)
                        if m == name:
                            break
                    yield sorted(members)


def _paths_to(
    target: str, members: list[str], facts: dict[str, Facts]
) -> dict[str, tuple[str, ...]]:
    """For each member but `target`, the calls from it to `target` within the component
    (the API a callback goes through included), shortest first."""
    inside = set(members)
    callers: dict[str, list[str]] = {m: [] for m in members}
    for m in members:
        for e in sorted(facts[m].edges):
            if e in inside:
                callers[e].append(m)
    # Backwards from the target: `next_of[m]` is the callee of `m` on its way there.
    next_of: dict[str, str] = {}
    queue = deque([target])
    while queue:
        callee = queue.popleft()
        for caller in callers[callee]:
            if caller != target and caller not in next_of:
                next_of[caller] = callee
                queue.append(caller)
    paths = {}
    for m in members:
        if m == target:
            continue
        path: list[str] = []
        here = m
        while here != target:
            step = next_of[here]
            path.extend((*facts[here].path_to(step), step))
            here = step
        paths[m] = tuple(path)
    return paths
