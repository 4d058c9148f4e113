"""Every code block of README.md runs, so the documentation cannot rot.

The rules, which the README's own blocks follow:

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
"""

from __future__ import annotations

import doctest
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"

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


def parse(text: str) -> list[Section]:
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
                raise AssertionError(f"README.md:{i + 1}: unclosed code block")
            sections[-1].blocks.append(Block(lang, i + 2, "\n".join(lines[i + 1 : end]) + "\n"))
            i = end + 1
            continue
        if line.startswith("## "):
            sections.append(Section(line[3:].strip(), i + 1))
        i += 1
    return [s for s in sections if s.blocks]


SECTIONS = parse(README.read_text(encoding="utf-8"))


def run_python(block: Block, namespace: dict[str, object]) -> None:
    first = block.code.lstrip().splitlines()[0] if block.code.strip() else ""
    skip = SKIP.match(first)
    if skip:
        assert skip.group(1).strip(), f"README.md:{block.line}: '# not run:' needs a reason"
        return
    # Padding with newlines makes tracebacks show the README's own line numbers.
    code = compile("\n" * (block.line - 1) + block.code, str(README), "exec")
    exec(code, namespace)


def run_pycon(block: Block, namespace: dict[str, object]) -> None:
    parser = doctest.DocTestParser()
    test = parser.get_doctest(block.code, namespace, "README", str(README), block.line - 1)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report: list[str] = []
    runner.run(test, out=report.append, clear_globs=False)
    assert runner.failures == 0, "".join(report)


@pytest.mark.parametrize("section", SECTIONS, ids=[s.title for s in SECTIONS])
def test_every_code_block_of_the_readme_section_runs(section: Section) -> None:
    namespace: dict[str, object] = {"__name__": "__readme__"}
    for block in section.blocks:
        if block.lang == "python":
            run_python(block, namespace)
        elif block.lang == "pycon":
            run_pycon(block, namespace)
        else:
            assert block.lang in NOT_PYTHON, (
                f"README.md:{block.line - 1}: a code block must name its language: python or "
                f"pycon (run), or one of {sorted(NOT_PYTHON)} (not run); got {block.lang!r}"
            )


def test_the_readme_runs_python_in_most_of_its_code_blocks() -> None:
    blocks = [b for s in SECTIONS for b in s.blocks]
    run = [b for b in blocks if b.lang in ("python", "pycon") and not SKIP.match(b.code.strip())]
    assert len(run) >= 10, "the README's examples are its tests: keep them runnable"


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
