"""Typed coroutines: what mypy checks, with the `coroutine.mypy` plugin, before anything runs.

`New[int, None](fn)` promises that every `Yield` reachable from `fn` hands out `int`s. The
yield is three calls down here (`main` -> `lambda` -> `copy_upper` -> `progress`), as in
real code; the plugin follows those calls and checks each `Yield[R2, S2]` it reaches against
the coroutine's `[R, S]`. `typed_broken.py` is this program with one helper changed, and
the README shows mypy's error for it.

Check it: ``mypy --strict examples/typed.py`` with ``plugins = ["coroutine.mypy"]``
Run it:   ``python examples/typed.py``
"""

from __future__ import annotations

from collections.abc import Iterable

from coroutine import Coroutine, New, Yield


def progress(lines_done: int) -> None:
    """A helper anywhere down the stack reports progress to whoever drives the copy."""
    Yield[int, None](lines_done)


def copy_upper(src: Iterable[str], dst: list[str]) -> None:
    for n, line in enumerate(src, 1):
        dst.append(line.upper())
        progress(n)


def main() -> None:
    src = ["one", "two", "three"]
    dst: list[str] = []
    copying: Coroutine[int, None] = New[int, None](lambda: copy_upper(src, dst))
    for done in copying:
        print(f"{done}/{len(src)} lines copied")  # `done` is an int for mypy too
    print(dst)


if __name__ == "__main__":
    main()
