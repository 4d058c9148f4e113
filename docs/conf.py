"""Sphinx configuration: the documentation site, built by ./scripts/test.sh with -W.

The pages stay Markdown (MyST), grouped by kind in docs/tutorial, docs/how-to, docs/reference
and docs/explanation; the API reference (docs/reference/api/) is autodoc's reading of the
docstrings. The source directory is the repository root, not docs/, so that the README
and benchmarks/RESULTS.md are pages of the site and every link between them and docs/ is
checked as written (the same links GitHub follows). Build it as the test command does, from
the repository root, into a directory outside the tree, with the `docs` and `workflow`
extras installed::

    python -m sphinx -W --keep-going -c docs -b html . /tmp/coroutine-docs

Warnings are errors: a broken link to a page or a heading, a name in a docstring that names
nothing documented (docs/_ext/docstrings.py), and a public name that the API reference
leaves out or shows without a docstring (docs/_ext/public_api.py) each fail the build.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

# autodoc reads the pure-Python implementation, the readable reference: its functions carry
# their signatures and docstrings, where the C accelerator's replacements have neither.
os.environ["COROUTINE_PURE"] = "1"

project = "coroutine"
author = "the coroutine authors"
copyright = "the coroutine authors"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",  # the docstrings' "Raises:" sections are Google style
    "public_api",
    "docstrings",
]

# The public modules: every name in each one's `__all__` must be documented in
# docs/reference/api/.
# A new public module is one line here and one page there.
public_modules = [
    "coroutine",
    "coroutine.aio",
    "coroutine.durable",
    "coroutine.workflow",
    "coroutine.types",
    "coroutine.mypy",
]
# Public names whose reference is known to be incomplete (no docstring, or a class shown
# only as an alias), each with the fix its owner will make in the source. A listed name
# whose reference is complete fails the build, so the list only shrinks.
public_api_known_gaps: dict[str, str] = {}

root_doc = "docs/index"
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
include_patterns = ["README.md", "benchmarks/RESULTS.md", "docs/**"]
# Pruned from the walk for speed (the virtualenvs are large); nothing there is a page.
exclude_patterns = [".*", "build", "dist", "src", "stubs", "tests", "docs/_ext", "docs/_root"]
# The site's front page, docs/index.html, is reached from the root too.
html_extra_path = ["_root"]

# `colon_fence`: index.md writes its toctrees as ::: blocks, which tests/test_readme.py
# (whose fences are backticks) leaves alone.
myst_enable_extensions = ["colon_fence"]
# Links to headings (`page.md#a-heading`) are checked like links to pages.
myst_heading_anchors = 4

# Docstrings write `name` for a reference to a documented name, as their source does.
default_role = "py:obj"
nitpicky = True  # with docs/_ext/docstrings.py, which reads the docstrings' names
nitpick_ignore = [
    # Engine.list's docstring names the private class behind WorkflowInfo; remove this
    # once it says `WorkflowInfo` (workflow/_engine.py).
    ("py:obj", "Row"),
]
autodoc_member_order = "bysource"
autodoc_preserve_defaults = True  # `key=_UNSET`, as written, not `key=<object object>`
autodoc_default_options = {"members": True, "undoc-members": True}

html_theme = "alabaster"
html_title = "coroutine"
