"""Fuzz durable states: every refusal must be InvalidStateError, in bounded time and memory.

    python benchmarks/fuzz_durable.py [--cases N] [--structured M] [--seed S] [--workers W]

Mutational cases start from real states (7 bodies, each with and without ``version=``, saved
created, mid-run with a pending Send, as a chain of deltas, from inside the body, and done)
written under one of these settings, and mutate them:

    plain     no key: mutated, then the checksum recomputed (so the mutation is decoded)
    keyed     a key: mutated, then the MAC recomputed with it (a forgery by a key holder)
    wrong     a key: mutated, the MAC left as it was (what an attacker without the key makes)
    rotated   signed with an old key, read with [new, old]: re-MACed with one of them, or not
    sealed    a toy transform (byte-reversed, XORed: mutations reach the plaintext), keyed or
              not, MAC or checksum recomputed
    fernet    FernetTransform and a key: MAC recomputed, or not

Mutations: bit flips, random bytes, inserts, deletes, duplicated chunks, interesting bytes
(tags, 0x80, 0xff), long varints, splices from other states, generated encodings (deep
nesting, keys of one hash, huge counts, empty-container bombs), truncation, appended frames.
Structured cases build values and whole states from random parts with the library's own
encoder (random events, positions, Sends and results), signed or sealed as above.

Each case runs `inspect`, then `Unmarshal` into a new coroutine of the state's body, a Send
if none was restored, and up to 10 `Next`/`Send`, twice: once timed (process CPU time of the
decoding, `inspect` and `Unmarshal`, and of the replay), once under `tracemalloc` (the peak
of the whole case against the cap of 64 bytes per byte of the state plus 1 MiB). A few
structured cases are large (256 KB to 4 MB): bytes that fail the MAC, dense values and long
logs under a valid one. Exit status 1 if any case raised anything but InvalidStateError,
hung (10 s untraced), or went over the memory cap; times are reported, not judged (the
machine is shared): the cases over 0.1 s per MB (plus 5 ms), the worst seconds per MB.

Not part of the test suite at full size; tests/test_durable_fuzz.py runs a small seeded run.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import time
import tracemalloc
from collections.abc import Callable
from multiprocessing import Pool
from typing import Any

from coroutine import (
    InvalidStateError,
    LoadContext,
    NewWithReturn,
    Patched,
    SideEffect,
    Yield,
)
from coroutine.durable import FernetTransform, _codec, _decode, _digest, _keys, _state, inspect

OLD_KEY, NEW_KEY = "old-key-of-the-fuzzer-0123456789", "new-key-of-the-fuzzer-0123456789"
FERNET_KEY = b"Hj8x4m5vRc7kqzqL0bm0bsM9y1E4fRz9cE2WfLk0z2M="
MODES = ("plain", "keyed", "wrong", "rotated", "sealed", "fernet")


# -- bodies: every exception the replay may raise into them is caught, so that anything but
# -- InvalidStateError leaving Next() is the library's fault ------------------------------------


def step(out: list[object], fn: Callable[[], object]) -> None:
    """Append what `fn()` returned, or the name of what it raised."""
    try:
        out.append(fn())
    except Exception as exc:
        out.append(type(exc).__name__)


def ints() -> list[object]:
    out: list[object] = []
    for i in range(6):
        step(out, lambda: Yield[int, int](i))  # noqa: B023 (called at once)
    return out


def texts() -> list[object]:
    out: list[object] = []
    for i in range(5):
        step(out, lambda: Yield[str, str](f"item-{i}"))  # noqa: B023
    return out


def records() -> list[object]:
    out: list[object] = []
    for i in range(5):
        step(out, lambda: Yield[dict[str, Any], Any]({"id": i, "tags": ("a", "b"), "score": i / 3}))  # noqa: B023
    return out


def roll() -> int:
    return 4


def fail() -> int:
    raise KeyError("effect failed")


def patched_then_yield(i: int) -> object:
    return ("patched", Yield[int, Any](i)) if Patched("fuzz-change") else Yield[int, Any](i)


def effects() -> list[object]:
    out: list[object] = []
    for i in range(4):
        step(out, lambda: SideEffect(roll if i % 2 else fail))  # noqa: B023
        step(out, lambda: patched_then_yield(i))  # noqa: B023
    return out


def containers() -> list[object]:
    out: list[object] = []
    for i in range(4):
        value = [{i, -i}, frozenset({str(i)}), (i, None, b"x"), 2.5**i]
        step(out, lambda: Yield[Any, Any](value))  # noqa: B023
    return out


INSIDE: list[bytes] = []  # the states `inside` marshalled while running


def inside() -> list[object]:
    out: list[object] = []
    for i in range(4):
        step(out, lambda: Yield[int, Any](i))  # noqa: B023
        if i == 2:
            INSIDE.append(LoadContext[int, Any]().Marshal())
    return out


def strict() -> list[object]:
    out: list[object] = []
    for i in range(4):
        step(out, lambda: Yield[int, int](i))  # noqa: B023 (S does not admit None)
    return out


# body -> (types, a value of S to send, how it is driven to a first state)
BODIES: dict[Callable[[], Any], tuple[tuple[Any, Any], Any]] = {
    ints: ((int, int), 7),
    texts: ((str, str), "s"),
    records: ((dict[str, Any], Any), {"k": [1, {2}]}),
    effects: ((int, Any), None),
    containers: ((Any, Any), {"x": frozenset({1})}),
    inside: ((int, Any), 3),
    strict: ((int, int), 5),
}


def make(body: Callable[[], Any], version: str | None) -> Any:
    types_, _ = BODIES[body]
    return NewWithReturn.__class_getitem__(types_)(body, durable=True, version=version)


# -- settings ---------------------------------------------------------------------------------


_XOR = bytes(b ^ 0x5A for b in range(256))


class Toy:
    """A transform that hides nothing (C speed): mutations of sealed bytes reach the plaintext."""

    def seal(self, data: bytes) -> bytes:
        return data.translate(_XOR)[::-1]

    def open(self, data: bytes) -> bytes:
        return data[::-1].translate(_XOR)


def writer_settings(mode: str) -> tuple[tuple[bytes, ...], Any]:
    old, new = _keys._derive(OLD_KEY), _keys._derive(NEW_KEY)
    return {
        "plain": ((), None),
        "keyed": ((new,), None),
        "wrong": ((new,), None),
        "rotated": ((old,), None),
        "sealed": ((new,), Toy()),
        "fernet": ((new,), FernetTransform(FERNET_KEY)),
    }[mode]


def reader_settings(mode: str) -> tuple[tuple[bytes, ...], Any]:
    keys, transform = writer_settings(mode)
    if mode == "rotated":
        keys = (_keys._derive(NEW_KEY), _keys._derive(OLD_KEY))
    return keys, transform


def use(settings: tuple[tuple[bytes, ...], Any]) -> None:
    _keys._Settings.keys, _keys._Settings.transform = settings


# -- real states ------------------------------------------------------------------------------


def real_states(mode: str) -> list[tuple[Callable[[], Any], str | None, bytes]]:
    """(body, version, state) for every body, version and way of saving, written in `mode`."""
    use(writer_settings(mode))
    out = []
    for body, (_, answer) in BODIES.items():
        for version in (None, "v1"):
            c = make(body, version)
            chain = c.Context().MarshalDelta()
            out.append((body, version, chain))
            steps = 0
            while c.Next():
                steps += 1
                if steps == 2:
                    c.throw(KeyError("thrown in"))
                    if c.Done():
                        break
                c.Send(answer)
                chain += c.Context().MarshalDelta()
                if steps == 3:
                    out.append((body, version, c.Context().Marshal()))  # a pending Send
            out.append((body, version, chain))
            out.append((body, version, c.Context().Marshal()))  # done, with its result
            out += [(body, version, running) for running in INSIDE]
            INSIDE.clear()
            c.close()
    return out


# -- mutations --------------------------------------------------------------------------------

INTERESTING = b"NTFifsbltdSZRPYNTEXPDZ\x00\x7f\x80\xff"


def bomb(rng: random.Random) -> bytes:
    kind = rng.randrange(6)
    n = rng.choice((100, 1000, 5000, 20000))
    if kind == 0:
        return b"l" + _codec._uvarint(n) + rng.choice((b"S\x00", b"Z\x00", b"d\x00", b"l\x00")) * n
    if kind == 1:
        return b"l\x01" * rng.choice((99, 101, 5000)) + b"N"
    if kind == 2:
        p61 = (1 << 61) - 1
        items = b"".join(_codec._int_bytes(k * p61) for k in range(1, 40))
        return b"S" + _codec._uvarint(39) + items
    if kind == 3:
        return b"l" + _codec._uvarint(rng.choice((1 << 40, (1 << 63) - 1))) + b"N"
    if kind == 4:
        return b"s" + b"\xff" * 9 + b"\x01" + b"x"
    return _codec.encode([[set(), frozenset(), {}, (), []]] * rng.choice((10, 100, 1000)))


def mutate(b: bytearray, rng: random.Random, others: list[bytes]) -> bytearray:
    for _ in range(rng.choice((1, 1, 1, 2, 3, 5))):
        if not b:
            b += bytes([rng.randrange(256)])
        i = rng.randrange(len(b))
        op = rng.randrange(12)
        if op == 0:
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1:
            b[i] = rng.randrange(256)
        elif op == 2:
            b[i:i] = rng.randbytes(rng.randrange(1, 9))
        elif op == 3:
            del b[i : i + rng.randrange(1, 17)]
        elif op == 4:
            j = rng.randrange(len(b))
            b[j:j] = b[i : i + rng.randrange(1, 64)]
        elif op == 5:
            b[i] = INTERESTING[rng.randrange(len(INTERESTING))]
        elif op == 6:
            b[i:i] = b"\xff" * rng.randrange(1, 12) + b"\x7f"
        elif op == 7:
            other = rng.choice(others)
            j = rng.randrange(len(other))
            b[i:] = other[j:]
        elif op == 8:
            b[i:i] = bomb(rng)
        elif op == 9:
            del b[i:]
        elif op == 10:
            b += rng.choice(others)[rng.randrange(8, 40) :]
        else:
            b[i : i + 1] = _codec.encode(rng.choice((10**40, -(2**70), "\x1b[2J", b"", 1e308)))
    return b


def sign(b: bytearray, key: bytes | None) -> bytearray:
    if len(b) > 16:
        h = _keys.hasher(key)
        h.update(bytes(b[:-16]))
        b[-16:] = h.digest()
    return b


def mutational_case(rng: random.Random, pools: dict[str, Any]) -> tuple[str, Any, bytes]:
    mode = MODES[rng.randrange(len(MODES))]
    states = pools[mode]
    body, version, base = rng.choice(states)
    b = mutate(bytearray(base), rng, [s for _, _, s in rng.sample(states, 3)])
    keys = writer_settings(mode)[0]
    if mode == "plain":
        b = sign(b, None)
    elif mode in ("keyed", "sealed") or (mode in ("rotated", "fernet") and rng.random() < 0.5):
        if mode == "rotated":
            keys = rng.choice((keys, (_keys._derive(NEW_KEY),)))
        b = sign(b, keys[0] if keys else None)
    return mode, (body, version), bytes(b)


# -- structured cases -------------------------------------------------------------------------


def value(rng: random.Random, depth: int = 0) -> Any:
    pick = rng.randrange(14 if depth < 4 else 8)
    scalars = (None, True, False, rng.randrange(-(2**70), 2**70), rng.random() * 1e10,
               "".join(chr(rng.randrange(0x30000)) for _ in range(rng.randrange(6))),
               rng.randbytes(rng.randrange(5)), 2**61 - 1)  # fmt: skip
    if pick < 8:
        v = scalars[pick]
        return v.encode("utf-8", "surrogatepass") if type(v) is str and rng.random() < 0.1 else v
    n = rng.randrange(5)
    if pick in (8, 9):
        items = [value(rng, depth + 1) for _ in range(n)]
        return items if pick == 8 else tuple(items)
    keys = [rng.choice((rng.randrange(100), str(rng.randrange(100)), (1, "a"))) for _ in range(n)]
    if pick == 10:
        return {k: value(rng, depth + 1) for k in keys}
    return set(keys) if pick in (11, 12) else frozenset(keys)


def encoded(rng: random.Random) -> bytes:
    """A random value's encoding, or (one time in five) a generated hostile encoding."""
    return bomb(rng) if rng.random() < 0.2 else _codec.encode(value(rng))


def large_case(rng: random.Random, mode: str) -> tuple[str, Any, bytes]:
    """A state of 256 KB to 4 MB: bytes that fail the MAC (refused at C speed), or a dense
    value or log under a valid MAC or checksum (decoded, up to the memory cap)."""
    body = rng.choice(list(BODIES))
    size = rng.choice((1 << 18, 1 << 20, 1 << 22))
    kind = rng.randrange(3)
    use(writer_settings(mode))
    if kind == 0:
        fill = rng.choice((b"S", b"S\x10t\x08", b"D", rng.randbytes(64)))
        flags = (1 if _keys._Settings.keys else 0) | (2 if _keys._Settings.transform else 0)
        head = _state.MAGIC + bytes((_state.FORMAT_VERSION, flags)) + b"F\x01N"
        return mode, (body, None), head + fill * (size // len(fill)) + bytes(20)
    c = make(body, None)
    rec = c.Context()._durable
    c.close()
    header = (rec.sig, rec.entry.ref, rec.entry.desc, rec.entry.fp, None, b"", 0)
    size = min(size, 1 << 20)
    d, raw = _digest.digest_and_canonical(0)
    if kind == 1:  # a dense pending Send
        item = rng.choice((b"l\x00", b"S\x00", b"d\x00", b"l\x01N", b"N", b"i\x01\x05"))
        n = size // len(item)
        sent = b"l" + _codec._uvarint(n) + item * n
        return (
            mode,
            (body, None),
            _state.Chain.full(header, b"", (_state.K_SUSPENDED, 0, 0, d, raw, sent, None))[0],
        )
    n = size // 8  # a long log of yields answered
    events = b"".join(b"Y" + _digest.digest(i % 6) + _codec.encode(i) for i in range(n))
    d, raw = _digest.digest_and_canonical(n)
    position = (_state.K_SUSPENDED, n, n, d, raw, None, None)
    return mode, (body, None), _state.Chain.full(header, events, position)[0]


def structured_case(rng: random.Random, pools: dict[str, Any]) -> tuple[str, Any, bytes]:
    mode = MODES[rng.randrange(len(MODES))]
    if rng.random() < 0.005:
        return large_case(rng, mode)
    if rng.random() < 0.5:
        raw = bytearray(_codec.encode(value(rng)))
        return "decode", None, bytes(mutate(raw, rng, [raw]) if rng.random() < 0.5 else raw)
    body = rng.choice(list(BODIES))
    version = rng.choice((None, "v1"))
    use(writer_settings(mode))
    c = make(body, version)
    rec = c.Context()._durable
    c.close()
    header = (rec.sig, rec.entry.ref, rec.entry.desc, rec.entry.fp, version, b"", rng.randrange(3))
    events, nyields = bytearray(), 0
    n = rng.randrange(8)
    for i in range(n):
        kind = rng.choice(b"YNTEXP")
        digest = _digest.digest(rng.choice((i, nyields, value(rng))))
        if kind in b"YNT":
            nyields += 1
        if kind == ord("Y"):
            events += b"Y" + digest + encoded(rng)
        elif kind == ord("N"):
            events += b"N" + digest
        elif kind in b"TX":
            exc = rng.choice((("builtins", "KeyError"), ("builtins", "MemoryError"),
                              ("builtins", "SystemExit"), (__name__, "Toy"),
                              ("coroutine.durable._continue", "ContinueAsNew"),
                              ("coroutine._errors", "InvalidStateError"),
                              ("os", "system"), ("antigravity", "X")))  # fmt: skip
            head = b"T" + digest if kind == ord("T") else b"X"
            events += head + _codec.encode((*exc, (value(rng),)))
        elif kind == ord("E"):
            events += b"E" + _codec.encode(value(rng))
        else:
            events += b"P" + _codec.encode(rng.choice(("fuzz-change", "other", 5)))
    kind = rng.randrange(4)
    pending = _digest.digest_and_canonical(rng.choice((nyields, value(rng))))
    d, raw = pending if kind == _state.K_SUSPENDED else (None, None)
    sent = encoded(rng) if rng.random() < 0.4 else None
    result = encoded(rng) if rng.random() < 0.3 else None
    position = (kind, n + rng.choice((0, 0, 0, 1, -1)), nyields, d, raw, sent, result)
    b = _state.Chain.full(header, bytes(events), position)[0]
    return mode, (body, version), b


# -- running a case ---------------------------------------------------------------------------


class Hang(BaseException):  # not an Exception: the bodies' handlers must not catch it
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise Hang


def drive(b: bytes, body: Callable[[], Any], version: str | None, times: list[float]) -> str:
    """`inspect`, then `Unmarshal` and up to 10 steps; InvalidStateError is the only refusal.
    Returns how far the state went: which of the three refused it, or "ran"; appends the CPU
    seconds of the decoding (`inspect` and `Unmarshal`) and of the replay to `times`."""
    _, answer = BODIES[body]
    start = time.process_time()
    pending_send, inspected = False, "inspect ok"
    try:
        pending_send = inspect(b).has_pending_send
    except InvalidStateError:
        inspected = "inspect refused"
    c = make(body, version)
    stage = "Unmarshal refused"
    try:
        try:
            c.Context().Unmarshal(b)
        finally:
            times.append(time.process_time() - start)
            start = time.process_time()
        stage = "replay refused"
        if c.status == "suspended" and not pending_send:
            c.Send(answer)
        for _ in range(10):
            if not c.Next():
                break
            c.Send(answer)
        stage = "ran"
    except InvalidStateError:
        pass
    finally:
        try:
            c.close()
        except InvalidStateError:
            pass
        times.append(time.process_time() - start)
    return f"{inspected}, {stage}"


def decode_only(b: bytes, times: list[float]) -> str:
    start = time.process_time()
    try:
        _decode.decode(b, budget=_decode.budget_for(len(b)))
    except _codec.DecodeError:
        return "decode refused"
    finally:
        times += [time.process_time() - start, 0.0]
    return "decoded"


def run(mode: str, what: Any, b: bytes) -> dict[str, Any]:
    """One case, timed then traced; what happened."""
    use(reader_settings(mode) if mode != "decode" else ((), None))
    if mode == "decode":

        def once(times: list[float]) -> str:
            return decode_only(b, times)

    else:
        body, version = what

        def once(times: list[float]) -> str:
            return drive(b, body, version, times)

    out: dict[str, Any] = {"mode": mode, "size": len(b), "error": None}
    signal.alarm(10)
    try:
        times: list[float] = []
        out["outcome"] = once(times)
        out["decoding"], out["replay"] = times
        signal.alarm(120)  # tracemalloc makes allocation-heavy work 5 to 10 times slower
        tracemalloc.start()
        try:
            once([])
            out["peak"] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    except Hang:
        out["error"] = "hang"
    except BaseException as exc:
        out["error"] = f"{type(exc).__module__}.{type(exc).__qualname__}: {str(exc)[:200]!r}"
    finally:
        signal.alarm(0)
    return out


_POOLS: dict[str, Any] = {}


def _worker_init() -> None:
    signal.signal(signal.SIGALRM, _alarm)
    for mode in MODES:
        _POOLS[mode] = real_states(mode)


def case(args: tuple[int, int, bool]) -> dict[str, Any]:
    seed, index, structured = args
    rng = random.Random(seed * 1_000_003 + index * 2 + structured)
    make_case = structured_case if structured else mutational_case
    mode, what, b = make_case(rng, _POOLS)
    out = run(mode, what, b)
    out["case"] = (seed, index, structured)
    out["structured"] = structured
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=130_000, help="mutational cases")
    parser.add_argument("--structured", type=int, default=7_000, help="structured cases")
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    jobs = [(args.seed, i, False) for i in range(args.cases)]
    jobs += [(args.seed, i, True) for i in range(args.structured)]
    random.Random(args.seed).shuffle(jobs)
    started = time.perf_counter()
    results: list[dict[str, Any]] = []
    with Pool(args.workers, initializer=_worker_init) as pool:
        for out in pool.imap_unordered(case, jobs, chunksize=64):
            results.append(out)
    return report(results, time.perf_counter() - started)


def report(results: list[dict[str, Any]], wall: float) -> int:
    errors = [r for r in results if r["error"]]
    over = [r for r in results if "peak" in r and r["peak"] > _cap(r["size"])]
    print(f"cases: {len(results):,} ({sum(not r['structured'] for r in results):,} mutational, "
          f"{sum(r['structured'] for r in results):,} structured) in {wall:.0f} s")  # fmt: skip
    print("by mode: " + _counts(r["mode"] for r in results))
    print("outcomes: " + _counts(r.get("outcome", "-") for r in results))
    print(f"exceptions other than InvalidStateError (DecodeError for raw decoding): {len(errors)}")
    for r in errors[:20]:
        print(f"  {r['case']} {r['mode']} {r['size']} bytes: {r['error']}")
    traced = [r for r in results if "peak" in r]
    worst = max(traced, key=lambda r: r["peak"] / _cap(r["size"]))
    print(f"over the memory cap (64 x bytes + 1 MiB, tracemalloc peak of the whole case): "
          f"{len(over)}; worst peak / cap {worst['peak'] / _cap(worst['size']):.3f} "
          f"({worst['peak']:,} bytes for {worst['size']:,})")  # fmt: skip
    timed = [r for r in results if "decoding" in r]
    print(f"largest input: {max(r['size'] for r in results):,} bytes; "
          f"{sum(r['size'] >= 1 << 16 for r in timed):,} of 64 KB or more")  # fmt: skip
    for part in ("decoding", "replay"):
        slow = sorted(timed, key=lambda r: r[part] / max(r["size"], 1) * 1e6, reverse=True)
        big = [r for r in slow if r["size"] >= 1 << 16][:3]
        over_time = [r for r in timed if r[part] > 0.1 * r["size"] / 1e6 + 0.005]
        print(f"{part} (CPU time): {len(over_time)} cases over 0.1 s per MB + 5 ms; slowest "
              f"{max(r[part] for r in timed) * 1e3:.1f} ms; worst of 64 KB or more: " + "; ".join(
                  f"{r[part] / (r['size'] / 1e6):.3f} s/MB ({r['size']:,} bytes, {r['mode']}, "
                  f"{r['outcome']})" for r in big))  # fmt: skip
        for r in over_time[:8]:
            print(f"  {r['case']} {r['mode']} {r['size']:,} bytes: {r[part] * 1e3:.1f} ms, "
                  f"{r['outcome']}")  # fmt: skip
    return 1 if errors or over else 0


def _cap(size: int) -> int:
    return 64 * size + (1 << 20)


def _counts(items: Any) -> str:
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return "; ".join(f"{k} {n:,}" for k, n in sorted(counts.items()))


if __name__ == "__main__":
    sys.exit(main())
