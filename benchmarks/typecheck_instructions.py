"""Instructions per checked yield, by type form, counted by callgrind (not timed).

    python -m benchmarks.typecheck_instructions          # every form, a table
    python -m benchmarks.typecheck_instructions FORM N   # one run (what callgrind counts)

Each form is measured as a `Run` of N and of 2N yields of one value through ``Yield[F, Any]``
in a coroutine of ``[F, Any]``, under ``valgrind --tool=callgrind``; (I(2N) - I(N)) / N is
the cost of one round trip, start-up cancelled out. The baseline is ``Any`` (no check).
Instruction counts are exact and repeatable on a shared, noisy machine, where times are not.
"""

from __future__ import annotations

import sys
from typing import Any

from . import count

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


def per_op(name: str) -> float:
    argv = ["-m", "benchmarks.typecheck_instructions", name]
    return count.per_op(lambda n: [*argv, str(n)], N, False)


def main() -> None:
    count.warm_up(["benchmarks.typecheck_instructions"])
    base = None
    print(f"| form | instructions per round trip (N = {N}) | ratio to `Any` |")
    print("|---|---|---|")
    for name in FORMS:
        per = per_op(name)
        base = base or per
        cell = name.replace("|", "\\|")  # a bar inside a table cell must be escaped
        print(f"| `{cell}` | {per:,.0f} | {per / base:.2f}x |", flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 3:
        run(sys.argv[1], int(sys.argv[2]))
    else:
        main()
