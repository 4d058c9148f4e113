"""``python -m coroutine.durable FILE``: print what a saved durable state holds.

FILE holds a state as `Marshal` wrote it, optionally followed by its deltas ("-" reads
standard input). Nothing in the state runs. A signed state needs its key in
``COROUTINE_STATE_KEY``. Exit status: 0, or 1 with the reason if the bytes are refused.
"""

from __future__ import annotations

import argparse
import sys

from .._errors import InvalidStateError
from . import inspect


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coroutine.durable", description=__doc__)
    parser.add_argument("file", help='a saved state ("-" for standard input)')
    args = parser.parse_args(argv)
    try:
        if args.file == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(args.file, "rb") as f:
                data = f.read()
    except OSError as exc:
        print(f"cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 1
    try:
        print(inspect(data))
    except InvalidStateError as exc:
        print(f"{args.file}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
