"""Checker parity: every program of the typing suite that needs no plugin gets the same
verdict from mypy (without the plugin), pyright, basedpyright and pyrefly; ty's differences
are exactly those listed in docs/reference/checkers.md.

The programs are the YAML cases (tests/typing/*.yml) none of whose expected errors is the
plugin's (``coroutine-yield``), except those that bring their own stub of a module of ours
(under ``coroutine/``, for mypy's YAML run; pyright reads the installed stubs first). Each case
becomes a package ``cases/<case>/`` (its ``main`` as ``main.py``, its ``files`` beside it,
their imports of each other made absolute within the package). Each checker runs once over
the whole directory, reading ``stubs/``. A case's verdict is the set of
(file, line) where the checker reports an error; the expected one is the YAML's (its
``# E:`` comments and ``out`` errors). The checkers run as configured here: mypy as the YAML
cases run it (``--strict``) but without the plugin, pyright and basedpyright in their
``standard`` mode (basedpyright's own defaults add rules about style, not about these types),
pyrefly with ``--preset default`` (its ``basic`` preset for unconfigured projects reports
almost nothing) and without its ``unimported-directive`` error (``reveal_type`` used without
an import, as mypy's cases do), ty as it comes.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
BIN = Path(sys.executable).parent
CHECKERS_DOC = ROOT / "docs" / "reference" / "checkers.md"
STUBS = ROOT / "stubs"

Verdict = set[tuple[str, int]]  # (file within the case, line) of each error


@dataclass
class Case:
    """One program of the suite: its files and the errors the YAML expects."""

    name: str
    files: dict[str, str]  # path within the case -> text
    expected: Verdict = field(default_factory=set)


def _load_cases() -> list[Case]:
    cases = []
    for path in sorted(HERE.glob("*.yml")):
        for raw in yaml.safe_load(path.read_text()):
            text = raw["main"] + raw.get("out", "")
            paths = [f["path"] for f in raw.get("files") or ()]
            if "coroutine-yield" in text:
                continue  # needs the plugin
            if any(p.startswith("coroutine/") for p in paths):
                continue  # its own stub of a module of ours, for mypy's YAML run only
            files = {"main.py": raw["main"]}
            for f in raw.get("files") or ():
                files[f["path"]] = f.get("content") or ""
            case = Case(raw["case"], files)
            for n, line in enumerate(raw["main"].splitlines(), 1):
                if re.search(r"#\s*E:", line):
                    case.expected.add(("main.py", n))
            for m in re.finditer(r"^(\w[\w/]*):(\d+): error:", raw.get("out", ""), re.M):
                case.expected.add((f"{m[1]}.py", int(m[2])))
            cases.append(case)
    return cases


def _absolute(text: str, package: str, local: set[str]) -> str:
    """`text` with imports of the case's own top-level modules made absolute in `package`,
    line for line."""

    def fix(m: re.Match[str]) -> str:
        keyword, name, rest = m[1], m[2], m[3]
        if name.split(".")[0] not in local:
            return m[0]
        if keyword == "from":
            return f"from {package}.{name}{rest}"
        top = name.split(".")[0]
        return f"import {package}.{name}{rest}; from {package} import {top}"

    return re.sub(r"^(from|import) ([\w.]+)(.*)$", fix, text, flags=re.M)


def _lay_out(root: Path, cases: list[Case]) -> None:
    """Write the cases under `root`/cases."""
    (root / "cases").mkdir()
    (root / "cases" / "__init__.py").touch()
    for case in cases:
        package = f"cases.{case.name}"
        local = {p.split("/")[0].removesuffix(".py") for p in case.files}
        for rel, text in case.files.items():
            path = root / "cases" / case.name / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(_absolute(text, package, local))
            for parent in path.relative_to(root).parents:
                if str(parent) != ".":
                    (root / parent / "__init__.py").touch()


def _where(root: Path, file: str, line: int) -> tuple[str, tuple[str, int]] | None:
    """(case, (file within the case, line)) of an error reported at `file`."""
    path = Path(file)
    path = path if path.is_absolute() else root / path
    try:
        parts = path.resolve().relative_to((root / "cases").resolve()).parts
    except ValueError:
        return None
    return parts[0], ("/".join(parts[1:]), line)


def _run(args: list[str], root: Path) -> str:
    proc = subprocess.run(args, cwd=root, capture_output=True, text=True, timeout=600)
    assert proc.returncode in (0, 1), " ".join(args) + "\n" + proc.stdout + proc.stderr
    return proc.stdout


def _mypy(root: Path) -> list[tuple[str, int]]:
    (root / "mypy.ini").write_text(f"[mypy]\nstrict = True\nmypy_path = {STUBS}\n")
    out = _run([sys.executable, "-m", "mypy", "--config-file", "mypy.ini", "cases"], root)
    return [(m[1], int(m[2])) for m in re.finditer(r"^(.+?):(\d+): error:", out, re.M)]


def _pyright(name: str, root: Path) -> list[tuple[str, int]]:
    config = {"typeCheckingMode": "standard", "stubPath": str(STUBS), "include": ["cases"]}
    (root / "pyrightconfig.json").write_text(json.dumps(config))
    out = _run([str(BIN / name), "--outputjson", "--pythonpath", sys.executable], root)
    return [
        (d["file"], d["range"]["start"]["line"] + 1)
        for d in json.loads(out)["generalDiagnostics"]
        if d["severity"] == "error"
    ]


def _pyrefly(root: Path) -> list[tuple[str, int]]:
    (root / "pyrefly.toml").write_text("[errors]\nunimported-directive = false\n")
    out = _run(
        [
            *(str(BIN / "pyrefly"), "check", "--preset", "default", "--output-format", "json"),
            *("--search-path", str(STUBS), "--python-interpreter-path", sys.executable, "cases"),
        ],
        root,
    )
    return [
        (e["path"], e["line"])
        for e in json.loads(out)["errors"]
        if e.get("severity", "error") == "error"
    ]


def _ty(root: Path) -> list[tuple[str, int]]:
    out = _run(
        [
            *(str(BIN / "ty"), "check", "--output-format", "concise"),
            *("--extra-search-path", str(STUBS), "--python", sys.executable, "cases"),
        ],
        root,
    )
    return [(m[1], int(m[2])) for m in re.finditer(r"^(.+?):(\d+):\d+: error\b", out, re.M)]


def _verdicts(root: Path, errors: list[tuple[str, int]]) -> dict[str, Verdict]:
    out: dict[str, Verdict] = {}
    for file, line in errors:
        where = _where(root, file, line)
        if where is not None:
            out.setdefault(where[0], set()).add(where[1])
    return out


def _documented_ty_differences() -> set[str]:
    """The cases listed in docs/reference/checkers.md's table of where ty differs."""
    text = CHECKERS_DOC.read_text()
    section = text.split("## Where ty differs", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(\w+)` \|", section, re.M))


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Verdict]]:
    root = tmp_path_factory.mktemp("parity")
    cases = _load_cases()
    _lay_out(root, cases)
    found = {
        "mypy": _mypy(root),
        "pyright": _pyright("pyright", root),
        "basedpyright": _pyright("basedpyright", root),
        "pyrefly": _pyrefly(root),
        "ty": _ty(root),
    }
    expected = {case.name: case.expected for case in cases}
    return {"expected": expected} | {
        checker: _verdicts(root, errors) for checker, errors in found.items()
    }


def _differences(results: dict[str, dict[str, Verdict]], checker: str) -> dict[str, str]:
    """The cases where `checker`'s verdict is not the expected one, and how."""
    out = {}
    for case, expected in results["expected"].items():
        got = results[checker].get(case, set())
        if got != expected:
            out[case] = f"expected errors at {sorted(expected)}, got {sorted(got)}"
    return out


@pytest.mark.parametrize("checker", ["mypy", "pyright", "basedpyright", "pyrefly"])
def test_checkers_agree_on_every_program_that_needs_no_plugin(
    results: dict[str, dict[str, Verdict]], checker: str
) -> None:
    assert len(results["expected"]) >= 30  # the suite's plugin-free cases were all found
    assert _differences(results, checker) == {}


def test_where_ty_differs_is_what_docs_checkers_md_lists(
    results: dict[str, dict[str, Verdict]],
) -> None:
    assert set(_differences(results, "ty")) == _documented_ty_differences(), _differences(
        results, "ty"
    )
