"""SPEC §6 Untrusted bytes, the last two bullets: one test per finding of the security review
(/work/shared/notes/durable-security-review.md, D1-D12), each built from its reproduction,
with the genuine state beside it still restoring."""

from __future__ import annotations

import hmac
import importlib.util
import pickle
import subprocess
import sys
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from coroutine import InvalidStateError, NewWithReturn, Yield
from coroutine.durable import (
    _codec,
    _digest,
    _keys,
    _log,
    _show,
    _state,
    configure,
    inspect,
    replay_elsewhere,
)

KEY = "k" * 32
NEW_KEY = "n" * 32


@pytest.fixture(autouse=True)
def no_key_nor_transform() -> Iterator[None]:
    configure(key=None, transform=None)
    yield
    configure(key=None, transform=None)


def catching() -> list[object]:
    out: list[object] = []
    for i in range(3):
        try:
            out.append(Yield[int, Any](i))
        except Exception as exc:
            out.append(type(exc).__name__)
    return out


def make(fn: Any = catching) -> Any:
    return NewWithReturn[int, Any](fn, durable=True)


def header(fn: Any = catching) -> tuple[Any, ...]:
    c = make(fn)
    rec = c.Context()._durable
    c.close()
    return ("[int, Any]", rec.entry.ref, rec.entry.desc, rec.entry.fp, None, b"", 0)


def forge(events: bytes = b"", nevents: int = 0, nyields: int = 0, *,
          kind: int = _state.K_SUSPENDED, sent: bytes | None = None,
          result: bytes | None = None, head: tuple[Any, ...] | None = None,
          fn: Any = catching) -> bytes:  # fmt: skip
    """A state of `make(fn)` with a valid checksum (or MAC, under the configured key)."""
    d = raw = None
    if kind == _state.K_SUSPENDED:
        d, raw = _digest.digest_and_canonical(nyields)
    position = (kind, nevents, nyields, d, raw, sent, result)
    return _state.Chain.full(head or header(fn), events, position)[0]


def thrown(module: str, qual: str, args: tuple[Any, ...] = ()) -> bytes:
    """The event of an exception thrown in at yield 0."""
    return b"T" + _digest.digest(0) + _codec.encode((module, qual, args))


def restored(b: bytes, fn: Any = catching) -> Any:
    c = make(fn)
    c.Context().Unmarshal(b)
    return c


def replay_thrown(module: str, qual: str, args: tuple[Any, ...] = ()) -> Any:
    """A coroutine restored at yield 1 from a state saying (module, qual) was thrown at yield 0,
    with 10 sent: its next `Next` replays the throw."""
    c = restored(forge(thrown(module, qual, args), 1, 1))
    c.Send(10)
    return c


def refused_by_replay(c: Any, match: str = "no such Exception subclass") -> None:
    with pytest.raises(InvalidStateError, match=match):
        c.Next()
    assert c.Done()


def genuine_throw(exc: Exception) -> bytes:
    """A state made by a real run: `exc` thrown into yield 0, then suspended at yield 1."""
    c = make()
    assert c.Next()
    assert c.throw(exc) == 1
    state = c.Context().Marshal()
    c.close()
    return state


def replays_to(state: bytes, first: object) -> None:
    c = restored(state)
    c.Send(10)
    assert c.Next() and c.Recv() == 2
    c.Send(20)
    assert not c.Next() and c.Result() == [first, 10, 20]


class Reverse:
    """A toy transform (no secrecy; the shipped one is FernetTransform)."""

    def seal(self, data: bytes) -> bytes:
        return data[::-1]

    def open(self, data: bytes) -> bytes:
        return data[::-1]


# -- D1: resolving a class named by a state runs no Python code --------------------------------


def test_d1_a_forged_exception_never_executes_a_lazily_loaded_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "d1_lazy_victim"
    marker = tmp_path / "module-ran"
    (tmp_path / f"{name}.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n\nclass Boom(Exception):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.loader is not None
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    refused_by_replay(replay_thrown(name, "Boom"))
    assert not marker.exists()
    boom = module.Boom  # the program uses the module: now it is imported
    assert marker.exists()
    replays_to(genuine_throw(boom()), "Boom")


class LocalProxy:
    """Like werkzeug's LocalProxy (``flask.request``): its ``__class__`` is a property."""

    armed = False  # only during the test (the leak check's isinstance reads __class__ too)
    calls = 0

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        if not LocalProxy.armed:
            return LocalProxy
        LocalProxy.calls += 1
        raise RuntimeError("Working outside of request context.")


request = LocalProxy()


def test_d1_a_forged_exception_never_runs_a_proxy_s_class_property() -> None:
    c = replay_thrown(__name__, "request.X")
    LocalProxy.armed = True
    try:
        refused_by_replay(c)
    finally:
        LocalProxy.armed = False
    assert LocalProxy.calls == 0


INITS: list[str] = []


class PerThread(threading.local):
    def __init__(self) -> None:
        INITS.append(threading.current_thread().name)


per_thread = PerThread()


def test_d1_a_forged_exception_never_runs_a_thread_local_s_init() -> None:
    INITS.clear()
    errors: list[BaseException] = []

    def replay() -> None:
        c = replay_thrown(__name__, "per_thread.X")
        try:
            c.Next()
        except BaseException as exc:
            errors.append(exc)
        c.close()

    t = threading.Thread(target=replay, name="replayer")
    t.start()
    t.join()
    assert INITS == []
    assert len(errors) == 1 and isinstance(errors[0], InvalidStateError)


META_CALLS: list[str] = []


class Meta(type):
    def __getattribute__(cls, name: str) -> Any:
        META_CALLS.append(name)
        return super().__getattribute__(name)


class Holder(metaclass=Meta):
    class Inner(Exception):
        pass


def test_d1_a_class_is_found_without_running_its_metaclass_getattribute() -> None:
    state = genuine_throw(Holder.Inner())
    META_CALLS.clear()
    replays_to(state, "Inner")
    assert META_CALLS == []


SETATTR_CALLS: list[str] = []


class Guarded(Exception):
    def __setattr__(self, name: str, value: Any) -> None:
        SETATTR_CALLS.append(name)
        super().__setattr__(name, value)


def guarded_args() -> object:
    try:
        Yield[int, Any](0)
    except Guarded as exc:
        return exc.args
    return None


def test_d1_a_rebuilt_exception_gets_its_args_without_running_its_setattr() -> None:
    c = NewWithReturn[int, Any](guarded_args, durable=True)
    assert c.Next()
    with pytest.raises(StopIteration):
        c.throw(Guarded("x", 1))
    running = forge(thrown(__name__, "Guarded", ("x", 1)), 1, 1, kind=_state.K_RUNNING,
                    fn=guarded_args)  # fmt: skip
    SETATTR_CALLS.clear()
    r = restored(running, guarded_args)
    assert not r.Next() and r.Result() == ("x", 1)
    assert SETATTR_CALLS == []


def test_d1_a_module_still_being_imported_is_not_searched(monkeypatch: pytest.MonkeyPatch) -> None:
    name = "d1_half_imported"
    spec = importlib.util.spec_from_loader(name, loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    module.Boom = type("Boom", (Exception,), {"__module__": name})  # type: ignore[attr-defined]
    spec._initializing = True  # type: ignore[attr-defined]  # what importlib sets meanwhile
    monkeypatch.setitem(sys.modules, name, module)
    refused_by_replay(replay_thrown(name, "Boom"))
    spec._initializing = False  # type: ignore[attr-defined]
    c = replay_thrown(name, "Boom")
    assert c.Next() and c.Recv() == 2
    c.close()


# -- D2: refusal costs what acceptance costs --------------------------------------------------


def python_calls(fn: Callable[[], object]) -> int:
    """How many Python functions run while `fn` runs (C calls are not counted)."""
    calls = 0

    def profile(frame: Any, event: str, arg: Any) -> None:
        nonlocal calls
        calls += event == "call"

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return calls


@pytest.mark.parametrize("keyed", [True, False])
@pytest.mark.parametrize("fill", [b"S", b"S\x10t\x08", b"x"])
def test_d2_refusing_a_forged_state_runs_python_code_bounded_by_a_fraction_of_its_size(
    keyed: bool, fill: bytes
) -> None:
    configure(key=KEY if keyed else None)
    size = 1 << 18
    head = b"CoRo" + bytes((_state.FORMAT_VERSION, int(keyed))) + b"F\x01N"
    forged = head + fill * (size // len(fill)) + bytes(20)

    def refuse() -> None:
        with pytest.raises(InvalidStateError, match="does not match"):
            inspect(forged)
        with pytest.raises(InvalidStateError, match="does not match"):
            restored(forged)

    assert python_calls(refuse) < 200 + len(forged) // 16
    good = forge()
    assert restored(good).status == "suspended"  # the genuine state: still loads
    assert python_calls(lambda: inspect(good)) < 200


def counting() -> int:
    total = 0
    for i in range(400):
        total += Yield[int, int](i)
    return total


def test_d2_a_fork_at_the_end_of_a_long_chain_is_still_explained() -> None:
    configure(key=KEY)
    c = NewWithReturn[int, int](counting, durable=True)
    base = c.Context().MarshalDelta()
    for _ in range(300):  # 300 deltas of one step: the smallest frames the library writes
        c.Next()
        c.Send(1)
        base += c.Context().MarshalDelta()
    c.close()
    forks = []
    for answer in (2, 3):
        r = NewWithReturn[int, int](counting, durable=True)
        r.Context().Unmarshal(base)
        r.Next()
        r.Send(answer)
        forks.append(r.Context().MarshalDelta())
        r.close()
    with pytest.raises(InvalidStateError, match="resumed twice"):
        NewWithReturn[int, int](counting, durable=True).Context().Unmarshal(
            base + forks[0] + forks[1]
        )
    genuine = NewWithReturn[int, int](counting, durable=True)
    genuine.Context().Unmarshal(base + forks[0])
    assert genuine.Next() and genuine.Recv() == 301
    genuine.close()


class Counting(Reverse):
    """The toy transform, counting its opens."""

    opened = 0

    def open(self, data: bytes) -> bytes:
        Counting.opened += 1
        return super().open(data)


def test_d2_a_sealed_state_is_opened_once_a_frame_and_inspect_opens_no_events() -> None:
    configure(transform=Counting())
    c = make()
    state = c.Context().MarshalDelta()
    for answer in (1, 2):
        c.Next()
        c.Send(answer)
        state += c.Context().MarshalDelta()
    c.close()
    Counting.opened = 0
    inspect(state)
    assert Counting.opened == 2  # the header and the last position
    Counting.opened = 0
    restored(state).close()
    assert Counting.opened == 2 + 3  # and each frame's events, once
    head = _state._part(_codec.encode(header()), Counting())
    many = b"Z\x00" * 1000  # a thousand empty sealed parts in one frame: refused at the first
    data = b"CoRo" + bytes((_state.FORMAT_VERSION, 2)) + b"F" + _codec._uvarint(len(head))
    d, raw = _digest.digest_and_canonical(0)
    pos = _state._part(_codec.encode((_state.K_SUSPENDED, 0, 0, 0, d, raw, None, None, 0)),
                       Counting())  # fmt: skip
    data += head + many + b"S" + _codec._uvarint(len(pos)) + pos + len(pos).to_bytes(4, "big")
    h = _keys.hasher(None)
    h.update(data)
    Counting.opened = 0
    with pytest.raises(InvalidStateError, match="more than one part"):
        restored(data + h.digest())
    assert Counting.opened <= 3


def test_d2_a_message_shows_a_huge_value_at_a_bounded_cost() -> None:
    huge = [list(range(1000)) for _ in range(300)]  # 300,000 ints
    tracemalloc.start()
    try:
        text = _show.short(huge)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert text.startswith("[[0, 1, 2, 3, 4, 5, 6, 7, ...], [0, 1,") and len(text) <= 80
    assert peak < 16_000  # a full repr would take 1.9 MB
    assert _show.short({"k": {2, 1}}) in ("{'k': {1, 2}}", "{'k': {2, 1}}")


def test_d2_marshal_of_a_restored_one_frame_state_does_not_decode_its_events(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    c = make()
    c.Next()
    c.Send(1)
    c.Next()
    state = c.Context().Marshal()
    c.close()
    r = restored(state)
    monkeypatch.setattr(_log, "strip", None)  # would raise if called
    assert r.Context().Marshal() == state
    r.close()


# -- D3: a configured transform refuses what it did not seal ----------------------------------


def test_d3_a_configured_transform_refuses_an_unsealed_state() -> None:
    events = b"Y" + _digest.digest(0) + _codec.encode(666)  # a forged answer to yield 0
    forged = forge(events, 1, 1)
    configure(transform=Reverse())
    with pytest.raises(InvalidStateError, match="not sealed"):
        restored(forged)
    with pytest.raises(InvalidStateError, match="not sealed"):
        inspect(forged)
    sealed = forge(events, 1, 1)  # under the transform: sealed
    c = restored(sealed)
    c.Send(1)
    assert c.Next() and c.Recv() == 2
    c.close()


# -- D4: one memory budget per state ----------------------------------------------------------


def keeping() -> list[object]:
    return [Yield[Any, Any](i) for i in range(3)]


def test_d4_a_result_or_a_send_is_refused_where_the_kind_has_none() -> None:
    one = _codec.encode(1)
    with pytest.raises(InvalidStateError, match="result"):
        restored(forge(result=one))
    with pytest.raises(InvalidStateError, match="Send"):
        restored(forge(kind=_state.K_DONE, sent=one))
    done = restored(forge(kind=_state.K_DONE, result=_codec.encode([1, 2])))
    assert done.Done() and done.Result() == [1, 2]


def test_d4_decoded_memory_is_capped_for_the_whole_state() -> None:
    k = 60_000  # 120 KB: 60,000 empty sets, 13 MB once built; each alone is within the cap
    bomb = b"l" + _codec._uvarint(k) + b"S\x00" * k
    c = NewWithReturn[Any, Any](keeping, durable=True)
    rec = c.Context()._durable
    c.close()
    head = ("[Any, Any]", rec.entry.ref, rec.entry.desc, rec.entry.fp, None, b"", 0)
    events = b"Y" + _digest.digest(0) + bomb
    d1, raw1 = _digest.digest_and_canonical(1)
    state = _state.Chain.full(head, events, (_state.K_SUSPENDED, 1, 1, d1, raw1, bomb, None))[0]
    cap = 64 * len(state) + (1 << 20)
    r = NewWithReturn[Any, Any](keeping, durable=True)
    tracemalloc.start()
    try:
        with pytest.raises(InvalidStateError, match="out of proportion"):
            r.Context().Unmarshal(state)
            r.Next()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        r.close()
    assert peak < cap
    small = b"l" + _codec._uvarint(100) + b"S\x00" * 100  # the same shape, small: restores
    state = _state.Chain.full(head, b"Y" + _digest.digest(0) + small,
                              (_state.K_SUSPENDED, 1, 1, d1, raw1, small, None))[0]  # fmt: skip
    r = NewWithReturn[Any, Any](keeping, durable=True)
    r.Context().Unmarshal(state)
    assert r.Next() and r.Recv() == 2
    r.close()


# -- D5: every refusal is InvalidStateError, from every entry point ----------------------------


def ints() -> list[int]:
    return [Yield[int, Any](i) for i in range(3)]


@pytest.mark.parametrize(
    "exc", [("builtins", "KeyError"), ("builtins", "MemoryError"),
            ("coroutine.durable._continue", "ContinueAsNew")]
)  # fmt: skip
def test_d5a_a_forged_exception_thrown_at_the_end_of_a_running_state_is_refused(
    exc: tuple[str, str],
) -> None:
    events = thrown(*exc, ("forged",))
    c = restored(forge(events, 1, 1, kind=_state.K_RUNNING, fn=ints), ints)
    with pytest.raises(InvalidStateError, match="replay"):
        c.Next()
    assert c.Done()


def strict() -> list[int]:
    return [Yield[int, int](i) for i in range(3)]


def test_d5a_a_forged_yield_resumed_with_nothing_at_the_end_of_a_running_state_is_refused() -> None:
    c = NewWithReturn[int, int](strict, durable=True)
    rec = c.Context()._durable
    c.close()
    head = ("[int, int]", rec.entry.ref, rec.entry.desc, rec.entry.fp, None, b"", 0)
    events = b"N" + _digest.digest(0)  # yield 0 resumed with nothing: YieldTypeError
    running = (_state.K_RUNNING, 1, 1, None, None, None, None)
    r = NewWithReturn[int, int](strict, durable=True)
    r.Context().Unmarshal(_state.Chain.full(head, events, running)[0])
    with pytest.raises(InvalidStateError, match="YieldTypeError"):
        r.Next()
    assert r.Done()


def test_d5a_a_forged_memory_error_in_the_middle_of_a_replay_is_refused() -> None:
    events = thrown("builtins", "MemoryError", ("forged",))
    c = restored(forge(events, 1, 1, fn=ints), ints)
    with pytest.raises(InvalidStateError, match="MemoryError"):
        c.Next()
    assert c.Done()


def marshal_inside_after_a_throw() -> object:
    try:
        Yield[int, Any](0)
    except KeyError:
        pass
    return marshal_here()


def marshal_here() -> bytes:
    from coroutine import LoadContext

    return LoadContext[int, Any]().Marshal()


def test_d5a_a_genuine_running_state_whose_body_caught_the_exception_still_restores() -> None:
    c = NewWithReturn[int, Any](marshal_inside_after_a_throw, durable=True)
    assert c.Next()
    with pytest.raises(StopIteration):
        c.throw(KeyError("real"))
    state = c.Result()
    assert isinstance(state, bytes) and inspect(state).status == "running"
    r = NewWithReturn[int, Any](marshal_inside_after_a_throw, durable=True)
    r.Context().Unmarshal(state)
    assert not r.Next() and isinstance(r.Result(), bytes)


def test_d5_marshal_of_a_restored_malformed_state_raises_invalid_state() -> None:
    d, raw = _digest.digest_and_canonical(1)
    position = (_state.K_SUSPENDED, 1, 1, d, raw, None, None)
    forged, chain = _state.Chain.full(header(), b"Q", position)  # "Q": no such event
    forged += chain.delta(b"", position, 0)  # two frames: Marshal must strip the records
    c = restored(forged)  # the events are decoded by the replay, not by Unmarshal
    with pytest.raises(InvalidStateError, match="malformed"):
        c.Context().Marshal()
    with pytest.raises(InvalidStateError, match="malformed at event 0"):
        c.close()  # closing replays the body to unwind it: it meets the malformed event
    assert c.Done()
    genuine = restored(forge(b"Y" + _digest.digest(0) + _codec.encode(5), 1, 1))
    assert inspect(genuine.Context().Marshal()).steps == 2
    genuine.close()


HUGE = 10**5000


@pytest.mark.parametrize("where", ["resumes", "events", "yields", "frame"])
def test_d5b_huge_header_and_position_ints_are_refused_everywhere(
    where: str, tmp_path: Path
) -> None:
    head = (*header()[:6], HUGE if where == "resumes" else 0)
    d, raw = _digest.digest_and_canonical(0)
    nevents = HUGE if where == "events" else 0
    nyields = HUGE if where == "yields" else 0
    position = (_state.K_SUSPENDED, nevents, nyields, d, raw, None, None)
    if where == "frame":  # a delta's frame number: forged by hand
        raw_head = _codec.encode(head)
        data = b"CoRo" + bytes((_state.FORMAT_VERSION, 0)) + b"F"
        data += _codec._uvarint(len(raw_head)) + raw_head
        state = _state.Chain(_keys.hasher(None), b"", HUGE)._close(data, position, 0)
    else:
        state = _state.Chain.full(head, b"", position)[0]
    with pytest.raises(InvalidStateError, match="out of range"):
        inspect(state)
    with pytest.raises(InvalidStateError, match="out of range"):
        restored(state)
    path = tmp_path / "huge.state"
    path.write_bytes(state)
    cli = run_cli(path)
    assert cli.returncode == 1 and "out of range" in cli.stderr
    assert "Traceback" not in cli.stderr
    assert str(inspect(forge())).startswith("entry")  # the genuine state: still printed


def run_cli(path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coroutine.durable", str(path)],
        capture_output=True, text=True, check=False, env=env,
    )  # fmt: skip


def test_d5c_a_sealed_state_with_a_malformed_frame_tail_is_refused() -> None:
    configure(transform=Reverse())
    head = _state._part(_codec.encode(header()), Reverse())
    data = b"CoRo" + bytes((_state.FORMAT_VERSION, 2)) + b"F" + _codec._uvarint(len(head))
    data += head + b"S" + b"\x80" * 12
    d1, raw1 = _digest.digest_and_canonical(1)
    fields = (_state.K_SUSPENDED, 0, 0, 0, d1, raw1, None, None, 0)
    pos = _state._part(_codec.encode(fields), Reverse())
    data += b"S" + _codec._uvarint(len(pos)) + pos + len(pos).to_bytes(4, "big")
    h = _keys.hasher(None)
    h.update(data)
    forged = data + h.digest()
    with pytest.raises(InvalidStateError, match="malformed"):
        restored(forged)
    assert inspect(forged).status == "suspended"  # inspect reads no events, sealed or not
    c = restored(forge())  # a genuine sealed state
    assert c.Next() and c.Recv() == 1
    c.close()


# -- D6: untrusted strings are escaped when printed -------------------------------------------

ESCAPES = (
    "[int, Any]\x1b]0;pwned\x07",
    "x.y\x1b[2J\x1b[31mstatus    done\x1b[0m\nentry     trusted.fn",
)


def test_d6_the_cli_and_messages_escape_control_characters(tmp_path: Path) -> None:
    sig, desc = ESCAPES
    head = (sig, b"f\0x.y", desc, b"", "v\r\x9b1", b"", 0)
    state = _state.Chain.full(head, b"", (_state.K_DONE, 0, 0, None, None, None, None))[0]
    path = tmp_path / "esc.state"
    path.write_bytes(state)
    cli = run_cli(path)
    assert cli.returncode == 0, cli.stderr
    assert not any((ord(ch) < 0x20 and ch != "\n") or 0x7F <= ord(ch) < 0xA0 for ch in cli.stdout)
    assert [line.split()[0] for line in cli.stdout.splitlines()] == [
        "entry", "types", "version", "status", "steps", "frames", "tag"
    ]  # fmt: skip
    assert "\\x1b[2J" in cli.stdout  # shown, escaped
    text = str(inspect(state))
    assert "\x1b" not in text and "\r" not in text and "\x9b" not in text
    with pytest.raises(InvalidStateError) as info:
        restored(state)
    assert "\x1b" not in str(info.value) and "\n" not in str(info.value)
    genuine = str(inspect(forge()))
    assert genuine.splitlines()[0] == f"entry     {__name__}.catching"


# -- D7: constant-time MAC compare, and a minimum key length ----------------------------------


def test_d7_the_mac_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    configure(key=KEY)
    state = forge()
    compared: list[bytes] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append(bytes(b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    tampered = state[:-1] + bytes([state[-1] ^ 1])
    with pytest.raises(InvalidStateError, match="MAC does not match"):
        restored(tampered)
    assert tampered[-16:] in compared
    restored(state).close()
    assert state[-16:] in compared


@pytest.mark.parametrize("short", ["a", "1234", b"fifteen-bytes!!"])
def test_d7_a_key_shorter_than_16_bytes_is_refused(short: str | bytes) -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        configure(key=short)
    with pytest.raises(ValueError, match="at least 16 bytes"):
        inspect(forge(), key=short)
    configure(key=b"sixteen-bytes!!!")  # 16 bytes: enough
    restored(forge()).close()


def test_d7_a_short_key_in_the_environment_is_refused_at_import() -> None:
    env = {"COROUTINE_STATE_KEY": "short", "PATH": ""}
    done = subprocess.run([sys.executable, "-c", "import coroutine.durable"], env=env,
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 1 and "COROUTINE_STATE_KEY" in done.stderr
    assert "at least 16 bytes" in done.stderr


# -- D8: replay_elsewhere passes the configured key and transform -----------------------------


def make_ints() -> Any:
    return make(ints)


def one_step_state(fn: Any = ints, answer: object = 1) -> bytes:
    """A state of `make(fn)` at yield 1, `answer` sent to yield 0."""
    c = make(fn)
    c.Next()
    c.Send(answer)
    c.Next()
    state = c.Context().Marshal()
    c.close()
    return state


def test_d8_replay_elsewhere_uses_the_key_set_by_configure() -> None:
    configure(key=KEY)
    assert replay_elsewhere(one_step_state(), f"{__name__}:make_ints", hashseeds=(1,)) is None


def test_d8_replay_elsewhere_uses_the_configured_transform() -> None:
    from coroutine.durable import FernetTransform

    configure(key=KEY, transform=FernetTransform(FernetTransform.generate_key()))
    assert replay_elsewhere(one_step_state(), f"{__name__}:make_ints", hashseeds=(1,)) is None


def test_d8_replay_elsewhere_says_when_a_transform_cannot_be_passed() -> None:
    class Local(Reverse):  # a class the child could not import
        pass

    configure(transform=Local())
    state = one_step_state()
    with pytest.raises(TypeError, match="cannot be passed to the child"):
        replay_elsewhere(state, f"{__name__}:make_ints", hashseeds=(1,))


# -- D9: keys rotate ----------------------------------------------------------------------------


def test_d9_states_are_written_under_the_first_key_and_read_under_any_listed() -> None:
    configure(key=KEY)
    old = forge()
    configure(key=[NEW_KEY, KEY])
    c = restored(old)  # read under a listed key
    new = c.Context().Marshal()  # written under the first
    c.close()
    assert inspect(new, key=NEW_KEY).status == "suspended"
    with pytest.raises(InvalidStateError, match="MAC does not match"):
        inspect(new, key=KEY)  # a key passed to one call is used alone
    with pytest.raises(InvalidStateError, match="MAC does not match"):
        inspect(old, key=NEW_KEY)
    configure(key=NEW_KEY)
    restored(new).close()
    with pytest.raises(InvalidStateError, match="MAC does not match"):
        restored(old)


def test_d9_a_delta_extends_its_state_under_the_key_it_was_signed_with() -> None:
    configure(key=KEY)
    c = make()
    full = c.Context().Marshal()
    c.close()
    configure(key=[NEW_KEY, KEY])
    r = restored(full)
    r.Next()
    r.Send(5)
    state = full + r.Context().MarshalDelta()
    r.close()
    info = inspect(state, key=KEY)
    assert info.steps == 1 and info.has_pending_send
    again = restored(state)
    assert again.Next() and again.Recv() == 1
    again.close()


def test_d9_the_environment_lists_keys_newest_first() -> None:
    script = (
        "from coroutine.durable import _keys; import sys; "
        "sys.exit(0 if _keys._Settings.keys == (_keys._derive('" + NEW_KEY + "'), "
        "_keys._derive('" + KEY + "')) else 1)"
    )
    env = {"COROUTINE_STATE_KEY": f"{NEW_KEY},{KEY}", "PATH": ""}
    assert subprocess.run([sys.executable, "-c", script], env=env, check=False).returncode == 0


# -- D10, D11: what a key does not do, documented ---------------------------------------------

DOCS = Path(__file__).resolve().parent.parent / "docs" / "how-to" / "durable.md"


def test_d10_a_key_accepts_an_earlier_genuine_save_so_the_store_checks_the_step() -> None:
    configure(key=KEY)
    c = make()
    saves = [c.Context().MarshalDelta()]
    for answer in (1, 2):
        c.Next()
        c.Send(answer)
        saves.append(saves[-1] + c.Context().MarshalDelta())
    c.close()
    rolled_back = restored(saves[1])  # genuine, earlier: accepted
    assert rolled_back.Next() and rolled_back.Recv() == 1
    rolled_back.close()
    text = DOCS.read_text()
    assert "\n## Threat model\n" in text
    model = text.split("\n## Threat model\n", 1)[1].split("\n## ", 1)[0]
    for needed in ("rollback", "another genuine state", "step", "What a key protects",
                   "What a transform protects", "What neither does"):  # fmt: skip
        assert needed in model, needed


def test_d11_a_restored_send_is_checked_as_a_live_send_is_and_the_docs_say_so() -> None:
    c = NewWithReturn[int, list[int]](lists, durable=True)
    rec = c.Context()._durable
    c.close()
    head = ("[int, list[int]]", rec.entry.ref, rec.entry.desc, rec.entry.fp, None, b"", 0)
    d, raw = _digest.digest_and_canonical(0)

    def with_send(v: object) -> bytes:
        position = (_state.K_SUSPENDED, 0, 0, d, raw, _codec.encode(v), None)
        return _state.Chain.full(head, b"", position)[0]

    r = NewWithReturn[int, list[int]](lists, durable=True)
    r.Context().Unmarshal(with_send([1, "not-an-int"]))  # the first element only, as live
    assert not r.Next() and r.Result() == [1, "not-an-int"]
    with pytest.raises(InvalidStateError, match="not of the coroutine's S"):
        NewWithReturn[int, list[int]](lists, durable=True).Context().Unmarshal(with_send(["x"]))
    model = DOCS.read_text().split("\n## Threat model\n", 1)[-1]
    assert "first element" in model


def lists() -> list[int]:
    return Yield[int, list[int]](0)


# -- D12: resumes saved as deltas are counted -------------------------------------------------


def test_d12_resumes_counts_resumes_saved_as_deltas() -> None:
    c = make()
    state = c.Context().MarshalDelta()
    c.Next()
    c.Send(1)
    state += c.Context().MarshalDelta()
    c.close()
    assert inspect(state).resumes == 0
    for resumes in (1, 2):
        r = restored(state)
        r.Next()
        r.Send(resumes)
        state += r.Context().MarshalDelta()
        assert inspect(state).resumes == resumes
        assert inspect(r.Context().Marshal()).resumes == resumes  # a full save: as before
        r.close()


# A state of format 2 (issue 21's main, cad1ece): `catching` with version="v1", its first
# frame created, then a delta at yield 0 with 7 sent. Written by that library, kept here.
FORMAT_2 = bytes.fromhex(
    "436f526f0200466d7407730a5b696e742c20416e795d62216600746573745f64757261626c655f756e74"
    "7275737465642e6361746368696e67731f746573745f64757261626c655f756e747275737465642e6361"
    "746368696e676210d4426b1f2d403448f4eff4d9fe7a812f730276316200690100531274086901006901"
    "006901006901004e4e4e4e00000012fda616a7e47e48903d227b045d099d9d44fda616a7e47e4890531f"
    "7408690101690100690100690101620403690100620369010062036901074e0000001f26e0ab68ba6695"
    "50e7006272445bd4b4"
)


def test_d12_a_state_of_format_2_still_restores_and_grows_in_format_2() -> None:
    assert inspect(FORMAT_2).has_pending_send and inspect(FORMAT_2).resumes == 0
    r = NewWithReturn[int, Any](catching, durable=True, version="v1")
    r.Context().Unmarshal(FORMAT_2)
    assert r.Next() and r.Recv() == 1
    r.Send(8)
    state = FORMAT_2 + r.Context().MarshalDelta()  # appended to a format 2 state
    full = r.Context().Marshal()
    r.close()
    assert state[4] == 2 and full[4] == _state.FORMAT_VERSION == 3
    assert inspect(state).steps == 2 and inspect(full).resumes == 1
    again = NewWithReturn[int, Any](catching, durable=True, version="v1")
    again.Context().Unmarshal(state)
    assert again.Next() and again.Recv() == 2
    again.Send(9)
    assert not again.Next() and again.Result() == [7, 8, 9]


# -- the shipped transform ----------------------------------------------------------------------


def test_fernet_transform_seals_states_and_refuses_others() -> None:
    from coroutine.durable import FernetTransform

    old, new = FernetTransform.generate_key(), FernetTransform.generate_key()
    configure(transform=FernetTransform(old))
    state = one_step_state(catching, 4111111111111111)
    assert _codec.encode(4111111111111111) not in state
    configure(transform=FernetTransform([new, old]))  # rotated: reads the old, seals anew
    r = restored(state)
    assert r.Next() and r.Recv() == 2
    resealed = r.Context().Marshal()
    r.close()
    configure(transform=FernetTransform(new))
    restored(resealed).close()
    with pytest.raises(InvalidStateError, match="transform could not open"):
        restored(state)
    assert (
        pickle.loads(pickle.dumps(FernetTransform(new))).open(FernetTransform(new).seal(b"x"))
        == b"x"
    )
