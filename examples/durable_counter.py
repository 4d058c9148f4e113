"""Progress that survives the process: the Go library's durable example, in Python.

Each run takes one step of the coroutine and saves its state to a file. With
COROUTINE_DURABLE=1 the next run continues where the last one stopped:

    $ COROUTINE_DURABLE=1 python examples/durable_counter.py
    yield: 0
    $ COROUTINE_DURABLE=1 python examples/durable_counter.py
    yield: 1
    $ COROUTINE_DURABLE=1 python examples/durable_counter.py
    yield: 2

Without it the coroutine is volatile and every run prints ``yield: 0``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import coroutine
from coroutine import New, Yield


def work() -> None:
    for i in range(3):
        Yield[int, Any](i)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--state", default="coroutine.state", help="the coroutine state file")
    state = Path(parser.parse_args().state)

    coro = New[int, Any](work)  # durable iff COROUTINE_DURABLE=1
    if coroutine.Durable and state.exists():
        coro.Context().Unmarshal(state.read_bytes())
    try:
        if coro.Next():
            print("yield:", coro.Recv())
    finally:
        if coroutine.Durable:
            state.write_bytes(coro.Context().Marshal())


if __name__ == "__main__":
    main()
