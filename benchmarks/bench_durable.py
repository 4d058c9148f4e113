"""Durable coroutines: state size per yield, and replay speed against live execution.

    python benchmarks/bench_durable.py [--yields N] [--repeat R]
    python benchmarks/bench_durable.py --compare OTHER_SRC [--rounds K] [--count]
    python benchmarks/bench_durable.py --refusal

Replay speed is reported as replay throughput / live throughput for the same body (1.0 means
replay runs as fast as live; the target is at least 0.5). "Live" is the body driven yield by
yield by a driver loop, both volatile and durable (recording); "replay" is the first `Next`
after `Unmarshal` of a state suspended at the body's last yield, which re-executes the whole
body from its record.

``--compare OTHER_SRC`` measures acceptance (`Unmarshal`, then the replay that decodes every
event) in this tree and in another checkout's ``src`` (say, main's), side by side, in process
CPU time: child processes alternate between the two for K rounds, each reporting its best of
R, and the best of all rounds is kept; ``--count`` adds instructions per acceptance, counted by
callgrind (benchmarks/count.py's runner) over a state of 2,000 yields, accepted k and 2k
times: (I(2k) - I(k)) / k.

``--refusal`` times the refusal of forged states of 1 and 4 MB whose MAC (with a key) or
checksum (without) does not match: filled with tail-like bytes (what made the explanation of
a refusal cost 2 us a byte, issue 21's D2) or other bytes; best of R, process CPU time.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coroutine import New, Yield

N = 10_000


def ints() -> None:
    total = 0
    for i in range(N):
        total += Yield[int, int](i)


def strings() -> None:
    for i in range(N):
        Yield[str, str](f"item-{i}")


def records() -> None:
    for i in range(N):
        Yield[dict[str, Any], Any]({"id": i, "tags": ("a", "b"), "score": i / 3})


BODIES: dict[str, tuple[Callable[[], None], Any, Callable[[Any], Any]]] = {
    "int -> int": (ints, (int, int), lambda v: v + 1),
    "str -> str": (strings, (str, str), lambda v: v.upper()),
    "dict -> None": (records, (dict[str, Any], Any), lambda v: None),
}


def drive(c: Any, answer: Callable[[Any], Any], stop_before_last: bool = False) -> None:
    n = 0
    while c.Next():
        n += 1
        c.Send(answer(c.Recv()))
        if stop_before_last and n == N:
            return  # suspended at the last yield, with its answer pending


def best(fn: Callable[[], float], repeat: int) -> float:
    return min(fn() for _ in range(repeat))


def bench(name: str, repeat: int) -> None:
    body, types, answer = BODIES[name]
    make: Any = New.__class_getitem__(types)  # New[R, S] with the pair in a variable

    def live(durable: bool) -> float:
        c = make(body, durable=durable)
        t = time.perf_counter()
        drive(c, answer)
        return time.perf_counter() - t

    c = make(body, durable=True)
    empty = len(c.Context().Marshal())
    drive(c, answer, stop_before_last=True)
    state = c.Context().Marshal()
    c.close()

    def replay() -> float:
        r = make(body, durable=True)
        r.Context().Unmarshal(state)
        t = time.perf_counter()
        r.Next()  # replays N-1 yields, delivers the Send to the last, runs to the end
        return time.perf_counter() - t

    def unmarshal() -> float:
        r = make(body, durable=True)
        t = time.perf_counter()
        r.Context().Unmarshal(state)
        return time.perf_counter() - t

    volatile = best(lambda: live(False), repeat)
    durable = best(lambda: live(True), repeat)
    rep = best(replay, repeat)
    unm = best(unmarshal, repeat)
    per_yield = (len(state) - empty) / (N - 1)
    us = 1e6 / N
    print(
        f"{name:14} state {per_yield:5.1f} B/yield (+{empty} B fixed) | per yield: "
        f"live volatile {volatile * us:5.2f} us, live durable {durable * us:5.2f} us, "
        f"replay {rep * us:5.2f} us, unmarshal {unm * us:5.2f} us | replay/live speed: "
        f"{volatile / rep:4.2f} vs volatile, {durable / rep:4.2f} vs durable"
    )


def saved(name: str) -> tuple[Any, bytes]:
    """`New[R, S]` of body `name`, and a state of it suspended at its last yield."""
    body, types, answer = BODIES[name]
    make: Any = New.__class_getitem__(types)
    c = make(body, durable=True)
    drive(c, answer, stop_before_last=True)
    state = c.Context().Marshal()
    c.close()
    return make, state


def accept(make: Any, body: Callable[[], None], state: bytes) -> tuple[float, float]:
    """Unmarshal `state` into a new coroutine, then replay it: the seconds of each."""
    r = make(body, durable=True)
    t0 = time.process_time()  # CPU time: the machine may be shared
    r.Context().Unmarshal(state)
    t1 = time.process_time()
    r.Next()  # replays N-1 yields, decoding each event
    t2 = time.process_time()
    r.close()
    return t1 - t0, t2 - t1


def child(repeat: int) -> None:
    """Best-of-`repeat` acceptance times of each body in this process's `coroutine`, as JSON."""
    out = {}
    for name in BODIES:
        make, state = saved(name)
        runs = [accept(make, BODIES[name][0], state) for _ in range(repeat)]
        out[name] = {
            "unmarshal": min(u for u, _ in runs),
            "replay": min(r for _, r in runs),
            "accept": min(u + r for u, r in runs),
            "state": len(state),
        }
    print(json.dumps(out))


def count_child(name: str, k: int) -> None:
    """Accept a state of body `name` k times (what callgrind counts)."""
    make, state = saved(name)
    gc.collect()
    gc.disable()  # as benchmarks/count.py runs its candidates: no collection in the count
    for _ in range(k):
        accept(make, BODIES[name][0], state)


def compare(other: Path, rounds: int, repeat: int, count: bool) -> None:
    trees = {"main": other.resolve(), "this": Path(__file__).resolve().parent.parent / "src"}
    me = str(Path(__file__).resolve())
    best: dict[str, dict[str, dict[str, float]]] = {label: {} for label in trees}
    for i in range(rounds):
        for label in list(trees)[:: 1 if i % 2 == 0 else -1]:  # alternate who goes first
            env = dict(os.environ, PYTHONPATH=str(trees[label]))
            cmd = [sys.executable, me, "--child", "--yields", str(N), "--repeat", str(repeat)]
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            for name, row in json.loads(done.stdout).items():
                mine = best[label].setdefault(name, dict(row))
                for key, value in row.items():
                    mine[key] = min(mine[key], value)
    counts: dict[str, dict[str, float]] = {label: {} for label in trees}
    if count:
        sys.path.insert(0, str(Path(me).parent.parent))
        from benchmarks.count import callgrind

        for label, src in trees.items():
            os.environ["PYTHONPATH"] = str(src)
            for name in BODIES:
                argv = [me, "--yields", "2000", "--count-child", name]
                # Once outside callgrind, to write the .pyc files every counted run then reads
                # (a run that compiles its sources would not cancel out: benchmarks/count.py).
                subprocess.run([sys.executable, *argv, "1"], check=True)
                k = 3
                small, large = (callgrind([*argv, str(n)], pure=False) for n in (k, 2 * k))
                counts[label][name] = (large - small) / k
    us = 1e6 / N
    print(f"acceptance of a state of {N:,} yields (best of {rounds} x {repeat}, us per yield):")
    for name in BODIES:
        m, t = best["main"][name], best["this"][name]
        line = (
            f"{name:14} state {m['state']:,} / {t['state']:,} B | unmarshal "
            f"{m['unmarshal'] * us:5.2f} / {t['unmarshal'] * us:5.2f} | replay "
            f"{m['replay'] * us:5.2f} / {t['replay'] * us:5.2f} | accept "
            f"{m['accept'] * us:5.2f} / {t['accept'] * us:5.2f} "
            f"(this/main {t['accept'] / m['accept']:.3f})"
        )
        if count:
            cm, ct = counts["main"][name], counts["this"][name]
            line += (
                f" | instructions per acceptance of 2,000 yields {cm:,.0f} / {ct:,.0f} "
                f"(this/main {ct / cm:.3f})"
            )
        print(line)
    print("(each pair: main / this)")


def refusal(repeat: int) -> None:
    from coroutine import InvalidStateError
    from coroutine.durable import _state, configure, inspect

    for keyed in (True, False):
        configure(key="k" * 32 if keyed else None)
        for size in (1 << 20, 4 << 20):
            for fill in (b"S", b"S\x10t\x08", b"x"):
                head = b"CoRo" + bytes((_state.FORMAT_VERSION, int(keyed))) + b"F\x01N"
                forged = head + fill * (size // len(fill)) + bytes(20)
                times = []
                for _ in range(repeat):
                    start = time.process_time()
                    try:
                        inspect(forged)
                    except InvalidStateError:
                        pass
                    times.append(time.process_time() - start)
                print(
                    f"{'key' if keyed else 'no key':6} {size >> 20} MB of {fill!r:14} refused in "
                    f"{min(times) * 1e3:6.1f} ms ({min(times) / (size / 1e6):.4f} s per MB)"
                )
    configure(key=None)


def main() -> None:
    global N
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--yields", type=int, default=N)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--compare", type=Path, help="another checkout's src directory")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--count", action="store_true", help="callgrind counts too")
    parser.add_argument("--refusal", action="store_true", help="time refusals of 1 and 4 MB")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--count-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    N = args.yields
    if args.child:
        child(args.repeat)
    elif args.count_child:
        count_child(args.count_child[0], int(args.count_child[1]))
    elif args.refusal:
        refusal(args.repeat)
    elif args.compare:
        compare(args.compare, args.rounds, args.repeat, args.count)
    else:
        for name in BODIES:
            bench(name, args.repeat)


if __name__ == "__main__":
    main()
