"""The broken twin of `typed.py`: a helper yields a `str` into a coroutine of `int`.

Only `progress` differs from `typed.py`: it now reports a message instead of a count. No
line near the `New[int, None]` changed, yet that call is now wrong, and mypy with the
`coroutine.mypy` plugin says so at the `New`, naming the `Yield` and the path of calls:

    error: New[int, None] reaches Yield[str, None] in "typed_broken.progress"
    (<lambda> -> typed_broken.copy_upper -> typed_broken.progress): it yields "str",
    which is not a subtype of the coroutine's R "int"  [coroutine-yield]

At run time the same mistake raises `YieldTypeError` at the yield, when (and only if) that
path runs: ``python examples/typed_broken.py`` shows it.
"""

from __future__ import annotations

from collections.abc import Iterable

from coroutine import Coroutine, New, Yield, YieldTypeError


def progress(lines_done: int) -> None:
    Yield[str, None](f"{lines_done} lines done")  # was: Yield[int, None](lines_done)


def copy_upper(src: Iterable[str], dst: list[str]) -> None:
    for n, line in enumerate(src, 1):
        dst.append(line.upper())
        progress(n)


def main() -> None:
    src = ["one", "two", "three"]
    dst: list[str] = []
    copying: Coroutine[int, None] = New[int, None](lambda: copy_upper(src, dst))
    try:
        for done in copying:
            print(f"{done}/{len(src)} lines copied")
    except YieldTypeError as e:
        print(f"YieldTypeError: {e}")


if __name__ == "__main__":
    main()
