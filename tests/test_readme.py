"""Every code block of README.md and docs/**/*.md runs, so the documentation cannot rot.

The rules, which the README's and the docs' own blocks follow:

* A ```` ```python ```` block is executed. The blocks of one ``##`` section run in order in
  one namespace (a later block may use what an earlier one defined); each section starts
  fresh. One test per section, named after it; a failure names the README line.
* A ```` ```pycon ```` block is a doctest (``>>>`` prompts and expected output), run in its
  section's namespace too.
* A block in any other language must say which: ``sh``, ``text``, ``ini``, ``toml``, ``go``,
  or ``lua``; those are not Python and are not run. A block with no language fails the
  suite.
* The only way to keep a Python block from running is to make its first line
  ``# not run: <why>``, visible to every reader; the reason may not be empty.

Every Python block is also type-checked (tests/typing/test_docs_typecheck.py), run or not.
"""

from __future__ import annotations

import doctest
import re
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").rglob("*.md"))]

NOT_PYTHON = {"sh", "text", "ini", "toml", "go", "lua"}
SKIP = re.compile(r"#\s*not run:(.*)")
FENCE = re.compile(r"^(`{3,})(.*)$")


@dataclass
class Block:
    lang: str
    line: int  # 1-based line of the first line of code
    code: str


@dataclass
class Section:
    title: str
    line: int
    blocks: list[Block] = field(default_factory=list)


def parse(text: str, name: str = "README.md") -> list[Section]:
    """The ``##`` sections of a Markdown text (### stays in its section), with their code
    blocks; text before the first ``##`` is a section named after the ``#`` title."""
    sections = [Section("(top)", 1)]
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = FENCE.match(line)
        if fence:
            ticks, lang = fence.group(1), fence.group(2).strip()
            end = i + 1
            while end < len(lines) and lines[end].rstrip() != ticks:
                end += 1
            if end == len(lines):
                raise AssertionError(f"{name}:{i + 1}: unclosed code block")
            sections[-1].blocks.append(Block(lang, i + 2, "\n".join(lines[i + 1 : end]) + "\n"))
            i = end + 1
            continue
        if line.startswith("## "):
            sections.append(Section(line[3:].strip(), i + 1))
        i += 1
    return [s for s in sections if s.blocks]


def sections_of(path: Path) -> list[Section]:
    return parse(path.read_text(encoding="utf-8"), path.name)


SECTIONS = [(path, s) for path in DOCS for s in sections_of(path)]


def run_python(block: Block, namespace: dict[str, object], path: Path = README) -> None:
    first = block.code.lstrip().splitlines()[0] if block.code.strip() else ""
    skip = SKIP.match(first)
    if skip:
        assert skip.group(1).strip(), f"{path.name}:{block.line}: '# not run:' needs a reason"
        return
    # Padding with newlines makes tracebacks show the file's own line numbers.
    code = compile("\n" * (block.line - 1) + block.code, str(path), "exec")
    exec(code, namespace)


def run_pycon(block: Block, namespace: dict[str, object], path: Path = README) -> None:
    parser = doctest.DocTestParser()
    test = parser.get_doctest(block.code, namespace, path.stem, str(path), block.line - 1)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report: list[str] = []
    runner.run(test, out=report.append, clear_globs=False)
    assert runner.failures == 0, "".join(report)


@pytest.mark.parametrize(
    ("path", "section"), SECTIONS, ids=[f"{p.name}::{s.title}" for p, s in SECTIONS]
)
def test_every_code_block_of_the_section_runs(
    path: Path, section: Section, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The section is a module, so that durable entries lead back to their functions.
    module = types.ModuleType("__readme__")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace: dict[str, object] = module.__dict__
    try:
        for block in section.blocks:
            if block.lang == "python":
                run_python(block, namespace, path)
            elif block.lang == "pycon":
                run_pycon(block, namespace, path)
            else:
                assert block.lang in NOT_PYTHON, (
                    f"{path.name}:{block.line - 1}: a code block must name its language: python "
                    f"or pycon (run), or one of {sorted(NOT_PYTHON)} (not run); got "
                    f"{block.lang!r}"
                )
    finally:
        namespace.clear()  # what the blocks made goes now, as a function's locals would


def test_the_docs_are_collected() -> None:
    names = {p.name for p, _ in SECTIONS}
    assert names >= {"README.md", "tour.md", "static-checking.md", "types.md"}


def test_the_docs_run_python_in_most_of_their_code_blocks() -> None:
    def run(path: Path | None) -> int:
        blocks = [b for p, s in SECTIONS if path in (None, p) for b in s.blocks]
        return sum(b.lang in ("python", "pycon") and not SKIP.match(b.code.strip()) for b in blocks)

    assert run(README) >= 4, "the README's tour is its test: keep it runnable"
    assert run(None) >= 15, "the docs' examples are their tests: keep them runnable"


def test_the_collector_sees_sections_blocks_and_skip_markers() -> None:
    text = (
        "# T\n```sh\nls\n```\n## A\n```python\nx = 1\n```\n### sub\n"
        "```python\n# not run: needs a display\nimport tkinter\n```\n"
        "## B\n```pycon\n>>> 1\n1\n```\n"
    )
    sections = parse(text)
    assert [s.title for s in sections] == ["(top)", "A", "B"]
    assert [b.lang for b in sections[1].blocks] == ["python", "python"]
    assert sections[1].blocks[0].line == 7
    namespace: dict[str, object] = {}
    for block in sections[1].blocks:
        run_python(block, namespace)  # the tkinter block is skipped by its marker
    assert namespace["x"] == 1
    run_pycon(sections[2].blocks[0], {})


def test_a_skip_marker_without_a_reason_fails() -> None:
    with pytest.raises(AssertionError, match="needs a reason"):
        run_python(Block("python", 1, "# not run:\nraise SystemExit\n"), {})


def test_a_failing_block_reports_its_readme_line() -> None:
    with pytest.raises(ZeroDivisionError) as info:
        run_python(Block("python", 40, "x = 1\n1 / 0\n"), {})
    assert info.traceback[-1].lineno + 1 == 41


FIRST_SCREEN = 45  # lines: what a reader sees before scrolling
MAP = [f"docs/how-to/{page}.md" for page in ("durable", "workflows", "async", "static-checking")]


def test_the_readme_is_a_front_page_with_an_example_the_two_commands_and_a_map() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250, "the reference belongs in docs/, not the README"
    top = parse(text)[0]
    assert top.title == "(top)", "the first screen comes before the first ## section"
    example, commands = top.blocks[:2]
    assert example.lang == "python", "the first screen opens with a runnable example"
    assert sum(bool(line.strip()) for line in example.code.splitlines()) <= 10
    assert commands.lang == "sh" and commands.code.startswith("./scripts/demo.sh")
    assert "\n./scripts/test.sh" in commands.code
    assert commands.line + len(commands.code.splitlines()) <= FIRST_SCREEN
    first_screen = "\n".join(text.splitlines()[:FIRST_SCREEN])
    missing = [page for page in MAP if f"]({page})" not in first_screen]
    assert not missing, f"the first screen's map must link {missing}"
