"""The documentation site's checks (docs/conf.py, docs/_ext/) fail the build when they should.

./scripts/test.sh builds the real site once, with -W; these tests build a small site with the
same extensions around a module made for the purpose, so that each check is seen to fail on
the mistake it exists for: a public name no page documents, a public function without a
docstring, a public class shown only as an alias, a name in backticks that names nothing, a
broken link or anchor. They also hold docs/conf.py's list of public modules to the package's.
"""

from __future__ import annotations

import ast
import io
import pkgutil
import sys
import textwrap
from pathlib import Path

import pytest
from sphinx.application import Sphinx
from sphinx.util.console import nocolor
from sphinx.util.docutils import docutils_namespace, patch_docutils

import coroutine

ROOT = Path(__file__).resolve().parent.parent
MODULE = "docs_fixture_module"

# Sphinx's and myst-parser's own uses of the Sphinx API that Sphinx 9 deprecates (napoleon's
# among them); not ours to mend.
pytestmark = [
    pytest.mark.filterwarnings(f"ignore::{category}:{module}")
    for category in ("DeprecationWarning", "PendingDeprecationWarning")
    for module in ("sphinx", "myst_parser")
]

SOURCE = '''
"""A public module for the documentation tests."""

__all__ = ["Documented", "Renamed", "run", "silent", "forgotten"]


class Documented:
    """A class; see `run`, `Documented.method` and `fn` (a parameter)."""

    def method(self) -> None:
        """A method."""


class _Hidden:
    """Exported under another name, which autodoc shows as an alias without members."""

    def method(self) -> None:
        """A method no page shows."""


Renamed = _Hidden


def run(fn: object) -> None:
    """Call `fn`. Refers to `Nowhere`, which names nothing."""


def silent() -> None:
    pass


def forgotten() -> None:
    """Exported, and on no page."""
'''

API = """
API
===

.. py:module:: docs_fixture_module

.. autoclass:: docs_fixture_module.Documented

.. autoclass:: docs_fixture_module.Renamed

.. autofunction:: docs_fixture_module.run

.. autofunction:: docs_fixture_module.silent
"""

GUIDE = """
# Guide

The [API](api.rst), [a section](#a-section), a [broken link](missing.md) and a [broken
anchor](#nowhere).

## A section
"""
BROKEN_LINKS = "a [broken link](missing.md) and a [broken\nanchor](#nowhere)"


def build(
    tmp_path: Path,
    pages: dict[str, str],
    *,
    known_gaps: dict[str, str] | None = None,
    module: str = MODULE,
    source: str = SOURCE,
    builder: str = "dummy",  # every check, no pages written
) -> str:
    """Build a site of `pages` (name: text) documenting `source` as `module` (a name of its
    own for each source: Sphinx keeps what it read of a module for the process), with
    docs/_ext's checks; its warnings."""
    (tmp_path / f"{module}.py").write_text(source)
    src = tmp_path / "src"
    src.mkdir()
    (src / "conf.py").write_text(
        textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT / "docs" / "_ext")!r})
        extensions = ["myst_parser", "sphinx.ext.autodoc", "public_api", "docstrings"]
        public_modules = [{module!r}]
        public_api_known_gaps = {known_gaps or {}!r}
        source_suffix = {{".md": "markdown", ".rst": "restructuredtext"}}
        default_role = "py:obj"
        nitpicky = True
        myst_heading_anchors = 2
        autodoc_default_options = {{"members": True, "undoc-members": True}}
        """)
    )
    names = "\n   ".join(name.partition(".")[0] for name in pages)
    (src / "index.rst").write_text(f"Site\n====\n\n.. toctree::\n\n   {names}\n")
    for name, text in pages.items():
        (src / name).write_text(text)
    warnings = io.StringIO()
    nocolor()
    sys.path.insert(0, str(tmp_path))
    try:
        # As `python -m sphinx` does it: docutils' registries are restored afterwards.
        with patch_docutils(src), docutils_namespace():
            app = Sphinx(
                str(src),
                str(src),
                str(tmp_path / "out"),
                str(tmp_path / "doctrees"),
                builder,
                status=None,
                warning=warnings,
                freshenv=True,
            )
            app.build()
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(module, None)
    return warnings.getvalue()


def test_every_mistake_is_a_warning_and_each_is_named(tmp_path: Path) -> None:
    warnings = build(tmp_path, {"api.rst": API, "guide.md": GUIDE})
    forgotten = f"{MODULE}.forgotten is in {MODULE}.__all__ but the API reference does not"
    assert forgotten in warnings
    assert f"{MODULE}.silent has no docstring" in warnings
    assert f"{MODULE}.Renamed is shown as an alias of {MODULE}._Hidden" in warnings
    assert "reference target not found: Nowhere" in warnings
    assert "target not found: 'missing.md'" in warnings
    assert "target not found: 'nowhere'" in warnings
    assert warnings.count("WARNING") == 6, warnings  # `fn` and the good links are no warning


def test_a_complete_site_builds_without_a_warning(tmp_path: Path) -> None:
    warnings = build(
        tmp_path,
        {
            "api.rst": API + "\n.. autofunction:: docs_fixture_module.forgotten\n",
            "guide.md": GUIDE.replace(BROKEN_LINKS, "no broken link"),
        },
        known_gaps={f"{MODULE}.silent": "a docstring", f"{MODULE}.Renamed": "its name"},
        source=SOURCE.replace(" Refers to `Nowhere`, which names nothing.", ""),
    )
    assert "WARNING" not in warnings, warnings


def test_a_known_gap_that_was_mended_must_leave_the_list(tmp_path: Path) -> None:
    api = API + "\n.. autofunction:: docs_fixture_module.forgotten\n"
    warnings = build(
        tmp_path,
        {"api.rst": api},
        known_gaps={f"{MODULE}.silent": "a docstring", f"{MODULE}.run": "a docstring"},
    )
    assert f"{MODULE}.silent has no docstring" not in warnings
    assert f"{MODULE}.run is listed in public_api_known_gaps" in warnings
    assert "remove it from the list" in warnings


HOUSE_STYLE = '''
"""Docstrings as this project writes them."""

from typing import Protocol

__all__ = ["LIMIT", "Sealer"]

LIMIT = 3
"""``LIMIT``: the most there may be, as a caller reads it: a count."""


class Sealer(Protocol):
    """Seals bytes."""

    def seal(self, data: bytes, /) -> bytes:
        """Return `data` sealed."""
'''


def test_the_house_docstrings_read_as_written(tmp_path: Path) -> None:
    module = "docs_fixture_house_style"
    api = f".. py:module:: {module}\n\n.. autodata:: {module}.LIMIT\n\n"
    api += f".. autoclass:: {module}.Sealer\n"
    warnings = build(tmp_path, {"api.rst": api}, module=module, source=HOUSE_STYLE, builder="text")
    assert "WARNING" not in warnings, warnings
    text = (tmp_path / "out" / "api.txt").read_text()
    assert '"LIMIT": the most there may be' in text  # not "Type: LIMIT"
    assert "Type:" not in text
    assert f"class {module}.Sealer\n" in text  # not Sealer(*args, **kwargs)


def _conf_public_modules() -> list[str]:
    tree = ast.parse((ROOT / "docs" / "conf.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and [ast.unparse(t) for t in node.targets] == [
            "public_modules"
        ]:
            return list(ast.literal_eval(node.value))
    raise AssertionError("docs/conf.py sets no public_modules")


def test_the_api_reference_covers_every_public_module() -> None:
    public = ["coroutine"] + [
        m.name
        for m in pkgutil.walk_packages(coroutine.__path__, "coroutine.")
        if not any(part.startswith("_") for part in m.name.split("."))
    ]
    assert sorted(_conf_public_modules()) == sorted(public), (
        "a public module needs one line in docs/conf.py's public_modules and a page in "
        "docs/reference/api/"
    )


@pytest.mark.parametrize("module", _conf_public_modules())
def test_each_public_module_has_a_page(module: str) -> None:
    name = module.removeprefix("coroutine.") or "coroutine"
    page = ROOT / "docs" / "reference" / "api" / f"{name}.rst"
    assert page.exists(), f"{module} is public: docs/reference/api/ needs its page"
    assert f".. py:module:: {module}\n" in page.read_text(encoding="utf-8")
