"""Re-measure the table of docs/reference/checkers.md.

Runs mypy with and without the plugin, pyright, basedpyright, pyrefly and ty over the marked
mistakes of docs/reference/checkers.md, then over every Python block of the README and docs/
and every example (laid out as tests/typing/test_docs_typecheck.py lays them out), and prints, per
checker, which marked mistakes it reported and which unmarked lines it called errors.

    python benchmarks/type_checkers.py OUTDIR

All six come with the ``dev`` extra (tests/typing/test_checker_parity.py runs them too).
Each checker's raw output is left in OUTDIR.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _load(name: str, path: Path):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def checkers(out: Path) -> dict[str, list[str]]:
    (out / "plugin.ini").write_text("[mypy]\nplugins = coroutine.mypy\n")
    (out / "plain.ini").write_text("[mypy]\n")
    mypy = [str(BIN / "mypy"), "--no-incremental", "--check-untyped-defs", "--allow-redefinition"]
    py = sys.executable
    return {
        "mypy + plugin": [*mypy, "--config-file", str(out / "plugin.ini")],
        "mypy": [*mypy, "--config-file", str(out / "plain.ini")],
        "pyright": [str(BIN / "pyright"), "--pythonpath", py],
        "basedpyright": [str(BIN / "basedpyright"), "--pythonpath", py, "--level", "error"],
        "pyrefly": [
            str(BIN / "pyrefly"),
            "check",
            "--preset",
            "default",
            *["--python-interpreter-path", py],
        ],
        "ty": [str(BIN / "ty"), "check", "--python", py, "--output-format", "concise"],
    }


def errors(cmd: list[str], files: list[str], cwd: Path, log: Path) -> set[tuple[str, int]]:
    """(file, line) of every error `cmd` reports (warnings and notes left out)."""
    proc = subprocess.run(cmd + files, capture_output=True, text=True, cwd=cwd)
    text = proc.stdout + proc.stderr
    log.write_text(text)
    got: set[tuple[str, int]] = set()
    for f in files:
        name = re.escape(Path(f).name)
        # mypy, pyright, basedpyright, ty: "file:line[:col]: error" / "file:line:col - error"
        for m in re.finditer(rf"{name}:(\d+)(?::\d+)?:? -? ?error", text):
            got.add((f, int(m[1])))
        # pyrefly: "ERROR ...\n --> file:line:col"
        for m in re.finditer(rf"^ERROR .*\n *--> .*?{name}:(\d+):\d+", text, flags=re.MULTILINE):
            got.add((f, int(m[1])))
    return got


def main(out: Path) -> None:
    tdt = _load("_docs_typecheck", ROOT / "tests/typing/test_docs_typecheck.py")
    rules = tdt._readme_module()
    out.mkdir(parents=True, exist_ok=True)
    blocks = rules.sections_of(ROOT / "docs/reference/checkers.md")
    code = "".join(b.code for s in blocks for b in s.blocks if b.lang == "python")
    mistakes = out / "checkers.py"
    mistakes.write_text(code)
    marks = {
        n: line.split("error:")[1].strip()
        for n, line in enumerate(code.splitlines(), 1)
        if "error:" in line
    }
    project = tdt.build(out / "docs")
    report: dict[str, object] = {"marks": marks}
    for name, cmd in checkers(out).items():
        tag = re.sub(r"\W+", "_", name)
        got = errors(cmd, [str(mistakes)], out, out / f"{tag}.txt")
        caught = {marks[n]: (str(mistakes), n) in got for n in marks}
        got = errors(cmd, project.files(), project.root, out / f"docs-{tag}.txt")
        want = project.errors | (project.plugin_errors if "plugin" in name else set())
        extra = sorted(project.origin.get(k, f"{k[0]}:{k[1]}") for k in got - want)
        report[name] = {"caught": caught, "errors on unmarked lines": extra}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
