"""The reachability check under the mypy daemon (``dmypy``): kept right after edits.

Theory of operation. The daemon's fine-grained mode keeps every module's AST alive and, after
an edit, processes again only the edited modules and the *targets* (functions, module top
levels) that depend on a symbol whose snapshot changed. A function's body is not part of any
snapshot, and the plugin's cached closures (`store.py`) would go stale in the modules that are
not processed again. So under the daemon the store keeps no closures: the check at a ``New``
walks the live ASTs (`Store` with ``live=True``). What remains is to make the daemon check the
``New`` again whenever what it reaches may have changed. Three things do it:

* each module gets the hidden class (`symbols.py`) with an attribute whose type is the
  literal digest of its *own* facts (the yield sites, calls, dispatches and callbacks of
  each function, its overrides, the modules it imports): an edit that changes them changes
  the module's snapshot, and fires the daemon's trigger ``<mod.__coroutine_reach__@.digest>``;
* each module declares that its own trigger fires when that of a module it imports does
  (a plugin dependency from trigger to trigger), so a change anywhere below a module fires
  the triggers of every module above it, along the import graph;
* the target holding a ``New`` depends on its module's trigger.

When a module is read (``get_additional_deps``) the store forgets what it knew of it (the
daemon puts the new AST into the old module object, so identity says nothing) and links its
triggers. The digest is computed at the first plugin hook of each new type checker of the
module (`Store.refresh`): that covers the module processed in full, and its targets analysed
anew without re-reading the file, whose calls may then resolve differently; and, on mypy 2.x,
at the end of processing (``get_additional_indirect_deps``) if no hook came.

Known limits: a target analysed anew (not re-read) whose body calls nothing and touches no
attribute calls no plugin hook, so if it now refers to another function (a name it uses was
redefined elsewhere), the daemon does not see it until its module is edited; on mypy 1.x, which
has no end-of-module hook, the same holds for an edited module that calls nothing (until one
that imports it is edited). mypy without the daemon has neither limit.
"""

from __future__ import annotations

import hashlib
import json

from mypy.nodes import MypyFile

from .closure import FORMAT, ser
from .symbols import HIDDEN, MARK, attach, imported
from .walk import Facts


def triggers(module: str) -> tuple[str, str]:
    """The daemon's names for a change of what `module`'s functions may reach: its digest
    changed, or its hidden class came or went."""
    return f"<{module}.{HIDDEN}.{MARK}>", f"<{module}.{HIDDEN}>"


def link(tree: MypyFile) -> None:
    """Make `tree`'s triggers fire when those of a module it imports do (called when the
    module is read, so its imports are known, and before the daemon takes its deps)."""
    mine = triggers(tree.fullname)
    for name in set(imported(tree)) - {tree.fullname}:
        for below in triggers(name):
            tree.plugin_deps.setdefault(below, set()).update(mine)


def publish(
    tree: MypyFile,
    facts: dict[str, Facts],
    overrides: dict[str, list[str]],
    modules: dict[str, MypyFile],
) -> None:
    """Give `tree` the digest of its own facts."""
    below = sorted({name for name in imported(tree) if name in modules and name != tree.fullname})
    text = json.dumps([_facts_json(facts), overrides, below], sort_keys=True)
    digest = hashlib.sha1(text.encode()).hexdigest()[:20]
    attach(tree, modules, {"format": FORMAT, "daemon": digest}, digest)


def depend(tree: MypyFile, target: str) -> None:
    """Make the daemon check `target` (holding a ``New``) again when what `tree` reaches
    changes."""
    for name in triggers(tree.fullname):
        tree.plugin_deps.setdefault(name, set()).add(target)


def _facts_json(facts: dict[str, Facts]) -> dict[str, object]:
    return {
        name: [
            sorted([s.kind, ser(s.r), ser(s.s)] for s in f.sites),
            sorted(f.edges),
            sorted(f.dispatches),
            sorted(f"{callee}:{d}:{via}" for (callee, d), via in f.via.items()),
        ]
        for name, f in sorted(facts.items())
    }
