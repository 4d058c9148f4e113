"""CPU seconds per MB of decoding dense values: the compiled loop and the Python one, side by side.

    python -m benchmarks.bench_decode [--size 1048576] [--repeat 5]

Each case is a list of n copies of one small item filling `--size` bytes, decoded by
``_decode.decode(raw, budget=_decode.budget_for(len(raw)))`` as durable state is: the most
objects per byte the format allows, and the input the cost criterion of issue 21 is about
(at most 0.1 s of CPU per MB). ``S\\x00`` (empty sets) runs out of the memory budget about
two thirds of the way in: its row times the refusal, objects freed included.

Columns, in process CPU seconds per MB of input (`time.process_time`, which counts the
kernel's page faults of the memory the objects take; best of `--repeat`):

- compiled: `_Decoder.dec` as the accelerator compiles it (absent on a pure install);
- python: `_Decoder.py_dec`, the loop as written (on a checkout without the compiled loop,
  `_Decoder.dec`, so that the script also measures the code before it);
- +gc: the same, followed by ``gc.collect(1)``. The compiled loop pauses the collector, so the
  young collection that would have run during the decoding runs after it, once, over the
  new objects: this column charges it to the decoding. The Python loop has run its
  collections already (about a quarter of its time, on these inputs).

The load average is printed: the machine may be shared, and the ratio of the two columns,
measured in one run, is the figure to compare.
"""

from __future__ import annotations

import argparse
import gc
import os
import time
from collections.abc import Callable
from typing import Any

from coroutine.durable import _codec, _decode

ITEMS = (b"l\x00", b"d\x00", b"N", b"i\x01\x05", b"l\x01N", b"S\x00")


def dense(item: bytes, size: int) -> bytes:
    n = size // len(item)
    return b"l" + _codec._uvarint(n) + item * n


def once(dec: Callable[[Any], Any], raw: bytes, collect: bool) -> tuple[float, str]:
    """CPU seconds to decode `raw` with `dec` (then free what it made), and the outcome."""
    gc.collect()
    start = time.process_time()
    try:
        d = _decode._Decoder(raw, 0, True, _decode.budget_for(len(raw)))
        value = dec(d)
        outcome = "decoded" if d.pos == len(raw) else "not all read"
        if collect:
            gc.collect(1)
        del value
    except _codec.DecodeError:
        outcome = "refused (budget)"
    return time.process_time() - start, outcome


def best(dec: Callable[[Any], Any], raw: bytes, repeat: int, collect: bool) -> tuple[float, str]:
    runs = [once(dec, raw, collect) for _ in range(repeat)]
    return min(t for t, _ in runs) / (len(raw) / 1e6), runs[0][1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1 << 20)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    python = getattr(_decode._Decoder, "py_dec", _decode._Decoder.dec)
    compiled = getattr(_decode, "COMPILED", None)
    impls = [("compiled", compiled)] if compiled is not None else []
    impls.append(("python", python))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"decoding dense values of {args.size:,} bytes; CPU s/MB, best of {args.repeat}; "
          f"load average {load}")  # fmt: skip
    head = f"{'item':<12}{'n':>9}  {'outcome':<17}"
    for name, _ in impls:
        head += f"{name:>10}{'+gc':>8}"
    if compiled is not None:
        head += f"{'python/compiled':>17}"
    print(head)
    for item in ITEMS:
        raw = dense(item, args.size)
        row, first = "", 0.0
        outcome = ""
        for _, dec in impls:
            t, outcome = best(dec, raw, args.repeat, False)
            t_gc, _ = best(dec, raw, args.repeat, True)
            row += f"{t:>10.3f}{t_gc:>8.3f}"
            first = first or t
        if compiled is not None:
            row += f"{t / first:>16.1f}x"
        n = args.size // len(item)
        print(f"{item!r:<12}{n:>9,}  {outcome:<17}" + row)


if __name__ == "__main__":
    main()
