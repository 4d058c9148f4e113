"""Every Python block of README.md and docs/**/*.md, and every example, type-checks under mypy
with the plugin and under pyright: one invocation of each over all of them.

A block's line that ends in a ``# error...`` comment must be an error for both checkers, one
that ends in ``# plugin error...`` an error for mypy with the plugin only, and no other line
may be an error. The blocks of one ``##`` section form one module, as they run in one
namespace (tests/test_readme.py), where, as in a notebook, a later block may bind a name
again to a value of another type (mypy's ``allow_redefinition``); a block whose first line
(after a ``# not run:`` line) is a path comment such as ``# app/fetch.py`` is that file of a
small project instead. Blocks marked ``# not run:`` are checked all the same.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.py") if p.name != "typed_broken.py")
PATH_COMMENT = re.compile(r"#\s*([\w/]+\.py)\s*$")
ERROR = re.compile(r"#\s*error\b")
PLUGIN_ERROR = re.compile(r"#\s*plugin error\b")


def _readme_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("_readme_rules", ROOT / "tests/test_readme.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@dataclass
class Project:
    """The doc blocks written out as files; where each generated line came from."""

    root: Path
    origin: dict[tuple[str, int], str] = field(default_factory=dict)  # (file, line) -> doc:line
    errors: set[tuple[str, int]] = field(default_factory=set)  # every checker
    plugin_errors: set[tuple[str, int]] = field(default_factory=set)  # mypy + plugin only

    def files(self) -> list[str]:
        return sorted(str(p) for p in self.root.rglob("*.py")) + [str(p) for p in EXAMPLES]

    def add(self, name: str, lines: list[tuple[str, str]]) -> None:
        """Write `lines` (code, origin) to `name` under the root."""
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in path.relative_to(self.root).parents:
            if str(parent) != ".":
                (self.root / parent / "__init__.py").touch()
        path.write_text("".join(code + "\n" for code, _ in lines))
        for n, (code, where) in enumerate(lines, 1):
            key = (str(path), n)
            self.origin[key] = where
            if PLUGIN_ERROR.search(code):
                self.plugin_errors.add(key)
            elif ERROR.search(code):
                self.errors.add(key)


def build(root: Path) -> Project:
    rules = _readme_module()
    project = Project(root)
    for doc in rules.DOCS:
        for n, section in enumerate(rules.sections_of(doc)):
            module: list[tuple[str, str]] = []
            for block in section.blocks:
                if block.lang != "python":
                    continue
                lines = [
                    (c, f"{doc.name}:{block.line + i}")
                    for i, c in enumerate(block.code.splitlines())
                ]
                start = 1 if lines and rules.SKIP.match(lines[0][0]) else 0
                named = PATH_COMMENT.fullmatch(lines[start][0]) if len(lines) > start else None
                if named:
                    project.add(named.group(1), lines[start:])
                else:
                    module += lines
            if module:
                stem = re.sub(r"\W", "_", doc.stem)
                project.add(f"doc_{stem}_{n}.py", module)
    return project


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return build(tmp_path_factory.mktemp("docs"))


def _explain(
    project: Project, got: set[tuple[str, int]], want: set[tuple[str, int]], out: str
) -> str:
    def where(key: tuple[str, int]) -> str:
        return project.origin.get(key, f"{key[0]}:{key[1]}")

    unexpected = sorted(where(k) for k in got - want)
    missing = sorted(where(k) for k in want - got)
    return f"unexpected errors at {unexpected}; missing errors at {missing}\n{out}"


def test_the_docs_and_examples_type_check_under_mypy_with_the_plugin(project: Project) -> None:
    config = project.root / "mypy.ini"
    config.write_text(
        "[mypy]\nplugins = coroutine.mypy\ncheck_untyped_defs = True\nallow_redefinition = True\n"
    )
    cmd = [sys.executable, "-m", "mypy", "--config-file", str(config), "--no-error-summary"]
    cmd += ["--cache-dir", str(project.root / ".mypy_cache"), "--no-color-output"]
    cmd += ["--show-absolute-path", *project.files()]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=project.root, timeout=600)
    got = {
        (m[1], int(m[2]))
        for m in re.finditer(r"^(.+?):(\d+): error:", out.stdout, flags=re.MULTILINE)
    }
    want = project.errors | project.plugin_errors
    assert got == want, _explain(project, got, want, out.stdout + out.stderr)


def test_the_docs_and_examples_type_check_under_pyright(project: Project) -> None:
    cmd = [str(Path(sys.executable).parent / "pyright"), "--outputjson"]
    cmd += ["--pythonpath", sys.executable, *project.files()]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=project.root, timeout=600)
    report = json.loads(out.stdout)
    got = {
        (d["file"], d["range"]["start"]["line"] + 1)
        for d in report["generalDiagnostics"]
        if d["severity"] == "error"
    }
    messages = "\n".join(
        f"{d['file']}:{d['range']['start']['line'] + 1}: {d['message']}"
        for d in report["generalDiagnostics"]
    )
    assert got == project.errors, _explain(project, got, project.errors, messages)
    # What pyright prints names no private stub name (a `_Context` alias, a `_R` type variable).
    assert not re.search(r"\b_[A-Z]\w*", messages), messages


def test_the_marked_mistakes_are_there_to_be_caught(project: Project) -> None:
    """The docs show each plain mistake, so the checks above are not vacuous."""
    assert len(project.errors) >= 6 and len(project.plugin_errors) >= 2
