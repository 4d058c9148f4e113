"""Instructions per checked yield, by type form, counted by callgrind (not timed).

    python benchmarks/typecheck_instructions.py          # every form, a table
    python benchmarks/typecheck_instructions.py FORM N   # one run (what callgrind counts)

Each form is measured as a `Run` of N and of 2N yields of one value through ``Yield[F, Any]``
in a coroutine of ``[F, Any]``, under ``valgrind --tool=callgrind``; (I(2N) - I(N)) / N is
the cost of one round trip, start-up cancelled out. The baseline is ``Any`` (no check).
Instruction counts are exact and repeatable on a shared, noisy machine, where times are not.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

FORMS: dict[str, tuple[Any, object]] = {
    "Any (no check)": (Any, 1),
    "int": (int, 1),
    "tuple[str, str]": (tuple[str, str], ("a", "b")),
    "tuple[str, str] | tuple[int, int]": (tuple[str, str] | tuple[int, int], (1, 2)),
    "tuple[str, int, float]": (tuple[str, int, float], ("a", 1, 1.0)),
    "tuple[str, str] | None": (tuple[str, str] | None, ("a", "b")),
}
N = 20_000


def run(name: str, n: int) -> None:
    from coroutine import New, Run, Yield

    form, value = FORMS[name]
    y = Yield[form, Any]

    def body() -> None:
        for _ in range(n):
            y(value)

    Run(New[form, Any](body), lambda v: None)


def instructions(name: str, n: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
        cmd += [sys.executable, __file__, name, str(n)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        return int(re.search(r"Collected : (\d+)", proc.stderr)[1])  # type: ignore[index]


def main() -> None:
    base = None
    print(f"| form | instructions per round trip (N = {N}) | ratio to `Any` |")
    print("|---|---|---|")
    for name in FORMS:
        per = (instructions(name, 2 * N) - instructions(name, N)) / N
        base = base or per
        cell = name.replace("|", "\\|")  # a bar inside a table cell must be escaped
        print(f"| `{cell}` | {per:,.0f} | {per / base:.2f}x |", flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 3:
        run(sys.argv[1], int(sys.argv[2]))
    else:
        main()
