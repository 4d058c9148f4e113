"""A Sphinx extension that fails the build (under -W) when the API reference misses a name.

Three warnings, of type ``public_api``:

* **undocumented**: a name in the `__all__` of a module listed in ``public_modules``
  (docs/conf.py) that no page documents under that module's path (``coroutine.Run``, not
  ``coroutine._run.Run``). Checked once every page is read, from the Python domain's
  inventory, so a name documented by hand (``py:data``) counts as well as autodoc's.
* **alias**: a public class that autodoc can only show as "alias of" another name, with
  none of its members, because the class is named otherwise in its source.
* **docstring**: a class, function, method or property that autodoc shows with nothing to
  say. autodoc renders such a name silently as a bare signature; the reference would then
  list a name and promise nothing about it.

A name may be listed in ``public_api_known_gaps`` (docs/conf.py), with the fix it waits for,
while its owner mends its source: its warnings are not given. A listed name that no longer
gives one is a warning itself, so the list only shrinks.

Which module pages exist, and how they group their names, is up to docs/reference/api/; this only
checks that together they are complete.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, cast

from sphinx.application import Sphinx
from sphinx.domains.python import PythonDomain
from sphinx.environment import BuildEnvironment
from sphinx.util import logging

logger = logging.getLogger(__name__)

# What autodoc documents that must carry a docstring of its own. Data and attributes may be
# described by the page's own text instead (an import alias such as `coroutine.Durable` has
# no docstring autodoc can find).
NEEDS_DOCSTRING = {"class", "exception", "function", "decorator", "method", "property"}


def public_objects(module_name: str) -> dict[str, Any]:
    """``{"module.name": object}`` for each name `module_name` exports.

    Raises:
        ImportError: the module does not import.
        AttributeError: it has no ``__all__`` (every public module must say what it exports).
    """
    module = importlib.import_module(module_name)
    return {f"{module_name}.{name}": getattr(module, name) for name in module.__all__}


def gap(app: Sphinx, name: str, message: str, *args: object, subtype: str) -> None:
    """Warn about `name`, unless it is a known gap; either way, note that it is one."""
    seen: set[str] = app.env.public_api_gaps_seen  # type: ignore[attr-defined]
    seen.add(name)
    if name not in app.config.public_api_known_gaps:
        logger.warning(message, name, *args, type="public_api", subtype=subtype)


def check_docstring(
    app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    if what in NEEDS_DOCSTRING and not any(line.strip() for line in lines):
        gap(
            app,
            name,
            "%s has no docstring: the reference would show its signature and promise "
            "nothing (write one in the source)",
            subtype="docstring",
        )


def check_public_names(app: Sphinx, env: BuildEnvironment) -> None:
    documented = cast(PythonDomain, env.get_domain("py")).objects
    for module_name in app.config.public_modules:
        try:
            objects = public_objects(module_name)
        except (ImportError, AttributeError) as exc:
            logger.warning(
                "public module %s (public_modules in docs/conf.py) cannot be read: %s",
                module_name,
                exc,
                type="public_api",
                subtype="module",
            )
            continue
        for name, obj in objects.items():
            entry = documented.get(name)
            if entry is None:
                logger.warning(
                    "%s is in %s.__all__ but the API reference does not document it: add "
                    "it to the module's page in docs/reference/api/",
                    name,
                    module_name,
                    type="public_api",
                    subtype="undocumented",
                )
            elif inspect.isclass(obj) and entry.objtype not in ("class", "exception"):
                gap(
                    app,
                    name,
                    "%s is shown as an alias of %s.%s, without its members: name the class "
                    "as it is exported",
                    obj.__module__,
                    obj.__qualname__,
                    subtype="alias",
                )
    for name in sorted(set(app.config.public_api_known_gaps) - env.public_api_gaps_seen):  # type: ignore[attr-defined]
        logger.warning(
            "%s is listed in public_api_known_gaps (docs/conf.py) but its documentation is "
            "complete now: remove it from the list",
            name,
            type="public_api",
            subtype="known_gap",
        )


def read_every_page(
    app: Sphinx, env: BuildEnvironment, added: set[str], changed: set[str], removed: set[str]
) -> list[str]:
    """Every page is read on every build, so that the checks above see every docstring
    (an incremental build reads only the changed pages; the whole takes seconds)."""
    env.public_api_gaps_seen = set()  # type: ignore[attr-defined]
    return sorted(env.found_docs)


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("public_modules", [], "env", types=[list])
    app.add_config_value("public_api_known_gaps", {}, "env", types=[dict])
    app.connect("env-get-outdated", read_every_page)
    app.connect("autodoc-process-docstring", check_docstring)
    app.connect("env-check-consistency", check_public_names)
    return {"version": "1", "parallel_read_safe": False, "parallel_write_safe": True}
