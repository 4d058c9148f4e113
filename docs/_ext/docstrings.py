"""Read the house docstrings as their source's readers do.

Three conventions of this project's docstrings that Sphinx would otherwise misread:

* **Names in single backticks** (below).
* **A usage or a description before a colon on an attribute's first line**: the docstring of
  `coroutine.Yield` opens with its usage and a colon, a field's ``#:`` comment reads "the
  entry, as messages name it: ...". napoleon takes such a first line of a data or attribute
  docstring for ``type: description``; here it stays text.
* **A signature of only ``*args, **kwargs``**, which says nothing (a class users must not
  construct, such as `coroutine.Coroutine`, or a Protocol): it is left out.

Names. The docstrings write a name between single backticks, for readers of the source: `Run`,
`Coroutine.Next`, `InvalidStateError` written in `coroutine.types` (meaning
`coroutine.InvalidStateError`), `S` (a type variable), `fn` (a parameter). With
``default_role = "py:obj"`` and ``nitpicky`` (docs/conf.py), Sphinx resolves a name only
where it is written relative to the documented module; this resolves the rest:

1. the private path of a public object, as a signature spells it
   (``coroutine.workflow._records.Row``), links to its public name
   (``coroutine.workflow.WorkflowInfo``);
2. a name (capitalised or dotted) that ends a documented name links to it (the shortest, if
   several do and one is shorter than the others: `Yield` is `coroutine.Yield`, not
   `coroutine.Context.Yield`);
3. what is not a public name of this library is shown as code, without a warning: a
   parameter or an expression (`fn`, `coro.Result()`), a type variable (`S`, `R2`),
   another package's name (``collections.abc.Callable``: the build runs offline, with no
   inventory of Python's documentation or mypy's) and a private path (`coroutine._plugin`).

What is left, a capitalised or dotted name that matches no documented name or several
equally, keeps Sphinx's warning, which -W makes an error: a typo, a renamed name, or a
private name leaking into the public reference.
"""

from __future__ import annotations

import functools
import importlib
import re
from typing import Any, cast

from sphinx.addnodes import pending_xref
from sphinx.application import Sphinx
from sphinx.domains.python import PythonDomain
from sphinx.environment import BuildEnvironment

NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
TYPE_VARIABLE = re.compile(r"([\w.]+\.)?[A-Z]\d*")


def looks_like_a_name(target: str) -> bool:
    """Whether `target` reads as a public name of this library: ``coroutine.`` and no
    private part, or capitalised (`Coroutine.Next`, `InvalidStateError`), and not a type
    variable. What else is an identifier is a parameter (`fn`), an attribute of one
    (`coro.Result`), another package's name (`mypy.options.Options`,
    `collections.abc.Callable`: the build runs offline, without their inventories) or a
    private path of this library (`coroutine._plugin`, documented in its source only)."""
    if NAME.fullmatch(target) is None or TYPE_VARIABLE.fullmatch(target):
        return False
    parts = target.split(".")
    if parts[0] == "coroutine":
        return not any(part.startswith("_") for part in parts)
    return parts[0][0].isupper()


@functools.cache
def public_aliases(modules: tuple[str, ...]) -> dict[str, str]:
    """``{private path: public name}`` for every object the public modules export."""
    aliases = {}
    for module_name in modules:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            path = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}"
            if path != f"{module_name}.{name}":
                aliases[path] = f"{module_name}.{name}"
    return aliases


def by_suffix(target: str, documented: dict[str, Any]) -> str | None:
    """The documented name that `target` ends, the shortest if several; None if none or a
    tie."""
    found = sorted((n.count("."), n) for n in documented if n.endswith(f".{target}"))
    if not found or (len(found) > 1 and found[0][0] == found[1][0]):
        return None
    return found[0][1]


def resolve(app: Sphinx, env: BuildEnvironment, node: pending_xref, contnode: Any) -> Any:
    """The node a docstring's unresolved `name` becomes: a link, code, or None (Sphinx
    warns)."""
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].removesuffix("()")
    domain = cast(PythonDomain, env.get_domain("py"))
    public = public_aliases(tuple(app.config.public_modules)).get(target) or (
        by_suffix(target, domain.objects) if looks_like_a_name(target) else None
    )
    if public is not None:
        return domain.resolve_xref(env, node["refdoc"], app.builder, "obj", public, node, contnode)
    return None if looks_like_a_name(target) else contnode


# napoleon reads a data or attribute docstring's first line as ``type: description``; a
# first line of its own, put before napoleon runs and taken away after, is read instead.
FIRST_LINE = "\0the first line follows (not a type)"


def before_napoleon(
    app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    if what in ("data", "attribute", "property") and lines:
        lines.insert(0, FIRST_LINE)


def after_napoleon(
    app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    if lines and lines[0] == FIRST_LINE:
        del lines[0]


VARARGS_ONLY = re.compile(r"\(\*\w+(: [^,]+)?, \*\*\w+(: [^)]+)?\)")


def no_varargs_signature(
    app: Sphinx,
    what: str,
    name: str,
    obj: Any,
    options: Any,
    signature: str | None,
    return_annotation: str | None,
) -> tuple[str, str | None] | None:
    if signature is not None and VARARGS_ONLY.fullmatch(signature):
        return "", return_annotation
    return None


def setup(app: Sphinx) -> dict[str, Any]:
    app.setup_extension("public_api")  # for `public_modules`
    app.setup_extension("sphinx.ext.napoleon")
    app.connect("builder-inited", lambda app: public_aliases.cache_clear())  # per build
    app.connect("missing-reference", resolve)
    app.connect("autodoc-process-docstring", before_napoleon, priority=400)  # napoleon: 500
    app.connect("autodoc-process-docstring", after_napoleon, priority=600)
    app.connect("autodoc-process-signature", no_varargs_signature)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
