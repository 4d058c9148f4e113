"""Durable coroutines over a long life: save after every step, then resume.

    python -m benchmarks.bench_durable_growth [--steps 1000,10000,100000] [--repeat 3]

For an n-step coroutine (one yield per step, the driver answering each), side by side:

- written: bytes a store writes in all when it saves after every step. With
  `Context.MarshalDelta` (when the library has it) that is the first full state plus one delta
  per step; without it, a full `Marshal` per step. Full states are O(n) each, so saving them
  all is O(n^2): past 10,000 steps they are sampled (every n/1000-th step, times the stride)
  and the figure (and the time spent saving, which then covers the samples only) is
  marked "~".
- state: the bytes `Unmarshal` reads to resume at the last step (full + deltas, or the last
  full state).
- unmarshal, replay, live: `Unmarshal` of that state; the first `Next` after it, which replays
  n-1 steps and runs the last one live; and the same n steps run live in a volatile coroutine.
  Best of `--repeat` runs each. replay/live is live time over replay time (1.0: as fast).

The bodies: "int" yields ints and is sent ints; "dict" yields a small dict, is sent None.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable
from typing import Any

from coroutine import New, Yield

STEPS = 1000


def ints() -> None:
    total = 0
    for i in range(STEPS):
        total += Yield[int, int](i)


def records() -> None:
    for i in range(STEPS):
        Yield[dict[str, Any], Any]({"id": i, "tags": ("a", "b"), "score": i / 3})


BODIES: dict[str, tuple[Callable[[], None], Any, Callable[[Any], Any]]] = {
    "int": (ints, (int, int), lambda v: v + 1),
    "dict": (records, (dict[str, Any], Any), lambda v: None),
}


def save_every_step(make: Any, answer: Callable[[Any], Any], n: int) -> tuple[int, bool, bytes]:
    """Drive n steps, saving after each; (bytes written, sampled?, what resumes the last)."""
    c = make()
    ctx = c.Context()
    delta = getattr(ctx, "MarshalDelta", None)
    stride = 1 if delta is not None or n <= 10_000 else n // 1000
    written = 0
    chunks: list[bytes] = []
    last = b""
    step = 0
    while c.Next():
        step += 1
        c.Send(answer(c.Recv()))
        if delta is not None:
            chunk = delta()
            written += len(chunk)
            chunks.append(chunk)
        elif step % stride == 0 or step == n:
            last = ctx.Marshal()
            written += len(last) * (stride if step % stride == 0 else 1)
        if step == n:
            break
    c.close()
    return written, stride > 1, b"".join(chunks) if delta is not None else last


def best(fn: Callable[[], float], repeat: int) -> float:
    return min(fn() for _ in range(repeat))


def measure(name: str, n: int, repeat: int) -> dict[str, Any]:
    global STEPS
    STEPS = n
    body, types, answer = BODIES[name]
    new: Any = New.__class_getitem__(types)

    def make(durable: bool = True) -> Any:
        return new(body, durable=durable)

    t = time.perf_counter()
    written, sampled, state = save_every_step(make, answer, n)
    save_s = time.perf_counter() - t

    def unmarshal() -> float:
        r = make()
        t = time.perf_counter()
        r.Context().Unmarshal(state)
        return time.perf_counter() - t

    def replay() -> float:
        r = make()
        r.Context().Unmarshal(state)
        t = time.perf_counter()
        r.Next()  # replays n-1 steps, delivers the pending answer, runs to the end
        return time.perf_counter() - t

    def live() -> float:
        c = make(False)
        t = time.perf_counter()
        while c.Next():
            c.Send(answer(c.Recv()))
        return time.perf_counter() - t

    gc.collect()
    return {
        "body": name,
        "steps": n,
        "written": written,
        "sampled": sampled,
        "save_s": save_s,
        "state": len(state),
        "unmarshal": best(unmarshal, repeat),
        "replay": best(replay, repeat),
        "live": best(live, repeat),
    }


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| body | steps | written in all | saving | state | unmarshal | replay | live "
        "| replay/live | unmarshal/replay |"
    )
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        approx = "~" if r["sampled"] else ""
        lines.append(
            f"| {r['body']} | {r['steps']:,} | {approx}{_size(r['written'])} "
            f"| {approx}{r['save_s']:.2f} s | {_size(r['state'])} | {r['unmarshal'] * 1e3:.1f} ms "
            f"| {r['replay'] * 1e3:.1f} ms | {r['live'] * 1e3:.1f} ms "
            f"| {r['live'] / r['replay']:.2f}x | {r['unmarshal'] / r['replay']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="1000,10000,100000")
    parser.add_argument("--bodies", default="int,dict")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = [
        measure(body, int(n), args.repeat)
        for body in args.bodies.split(",")
        for n in args.steps.split(",")
    ]
    print(table(rows))


if __name__ == "__main__":
    main()
