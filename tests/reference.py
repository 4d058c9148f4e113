"""An independent reference for the model test: SPEC §4 written over plain Python generators.

`RefCoroutine` mirrors `coroutine.Coroutine`'s driver operations with a generator as the body,
following the SPEC and the README's decisions line by line, not the runtime's code. The body
programs of `test_model.py` are interpreted twice: by `run_ref` here (as a generator, nested
calls as ``yield from``), and by the test's stackful interpreter (nested calls as plain calls
and `Yield` at any depth). Both write the same events into a trace, which must be identical.

Programs are tuples (see `test_model.py` for the generator of random ones):

    ("yield", value, site)            site "any" (Yield[int, Any]) or "int" (Yield[int, int])
    ("yield_bad",)                    Yield[int, Any]("x"): YieldTypeError at the yield site
    ("raise", kind)                   raise an exception of kind (see EXCEPTIONS)
    ("return", value)                 return from the current function (ignored in finally)
    ("stop_self",)                    Current().Stop()
    ("self_op", op)                   a driver operation on the running coroutine itself
    ("call", block)                   run block in a nested function call
    ("try", nid, block, handlers, finally_block | None)
    ("with", nid, block)              a context manager that records its enter and exit
    ("inner", nid, block, ops_before, outer_block, ops_after, with_return)
                                      an inner coroutine, driven by ops_before, then the
                                      outer body runs outer_block, then ops_after; the inner
                                      coroutine is dropped on the way out
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from coroutine import CoroutineExit, ResumeError, StoppedError, YieldTypeError

Trace = list[tuple[Any, ...]]
Block = list[tuple[Any, ...]]


class Boom(BaseException):
    """A BaseException of the tests' own, neither Exception nor an exit."""


EXCEPTIONS: dict[str, type[BaseException]] = {
    "ValueError": ValueError,
    "KeyError": KeyError,
    "KeyboardInterrupt": KeyboardInterrupt,
    "SystemExit": SystemExit,
    "Boom": Boom,
    "CoroutineExit": CoroutineExit,
}
CATCHABLE: dict[str, type[BaseException] | tuple[type[BaseException], ...]] = {
    "ValueError": ValueError,
    "Exception": Exception,
    "CoroutineExit": CoroutineExit,
    "BaseException": BaseException,
    "ResumeError": ResumeError,
    "YieldTypeError": YieldTypeError,
    "KeyboardInterrupt|Boom": (KeyboardInterrupt, Boom),
}


class Nothing:
    """What a resume carries when the driver sent nothing."""

    def __repr__(self) -> str:
        return "<nothing>"


NOTHING: Any = Nothing()
STOPPED = "cannot yield from a coroutine that has been stopped"


def is_s(v: object) -> bool:
    """The coroutines of the model are ``[int, int]``."""
    return isinstance(v, int)


class Recorder:
    """The ``with`` block of a program: records its enter and exit, suppresses nothing."""

    def __init__(self, trace: Trace, nid: int) -> None:
        self.trace = trace
        self.nid = nid

    def __enter__(self) -> None:
        self.trace.append(("enter", self.nid))

    def __exit__(self, t: type[BaseException] | None, *_: object) -> None:
        self.trace.append(("exit", self.nid, t.__name__ if t else None))


class RefCoroutine:
    """A coroutine of SPEC §4 whose body is a generator (made by `body(self)`)."""

    def __init__(
        self, body: Callable[[RefCoroutine], Generator[int, Any, Any]], with_return: bool
    ) -> None:
        self.body = body
        self.with_return = with_return
        self.state = "created"
        self.stopping = False
        self.sent: Any = NOTHING
        self.recv: Any = None
        self.result: Any = None
        self.gen: Generator[int, Any, Any] | None = None
        self.zombie = False  # yielded while stopping: its generator stays suspended
        self.unraisable: Callable[[BaseException], None] = lambda e: None

    # -- the operations of SPEC §3 ---------------------------------------------------

    @property
    def status(self) -> str:
        return self.state

    def Done(self) -> bool:
        return self.state == "done"

    def Recv(self) -> Any:
        return self.recv

    def Result(self) -> Any:
        return self.result

    def Send(self, v: Any) -> None:
        if not is_s(v):  # §5: Send checks v against S in the driver
            raise YieldTypeError(f"cannot send {v!r}")
        self.sent = v

    def Stop(self) -> None:  # §4.6
        if self.state != "done":
            self.stopping = True

    def Next(self) -> bool:  # §4.1, §4.6, §4.11
        if self.state == "done":
            return False
        if self.state == "running":
            raise ResumeError("running")
        if self.state == "created":
            if self.stopping:
                self.state = "done"
                return False
            self.gen = self.body(self)
            return self._step(None, None)
        return self._resume(self.sent)

    def _resume(self, value: Any) -> bool:
        if self.stopping:
            return self._step(None, CoroutineExit())
        return self._step(value, None)

    def _step(self, value: Any, exc: BaseException | None) -> bool:
        assert self.gen is not None
        self.state = "running"
        try:
            out = self.gen.send(value) if exc is None else self.gen.throw(exc)
        except StopIteration as e:
            self.state = "done"
            if self.with_return and not self.stopping:
                self.result = e.value
            return False
        except CoroutineExit:  # README: CoroutineExit escaping the body is a quiet end
            self.state = "done"
            return False
        except BaseException:  # §4.5
            self.state = "done"
            raise
        if self.stopping:  # §4.7: yielding while stopping ends it with ResumeError
            self.state = "done"
            self.zombie = True
            raise ResumeError(STOPPED)
        self.state = "suspended"
        self.recv = out
        self.sent = NOTHING  # §4.2: the slot is cleared at every yield
        return True

    def __next__(self) -> Any:
        if self.Next():
            return self.recv
        raise StopIteration(self.result)

    def send(self, v: Any) -> Any:
        if not (v is None and self.state == "created"):  # README: priming is not checked
            self.Send(v)
        if self.Next():
            return self.recv
        raise StopIteration(self.result)

    def throw(self, exc: BaseException) -> Any:  # §4.8
        if self.state == "suspended":
            if self._step(None, exc):
                return self.recv
            raise StopIteration(self.result)
        if self.state == "created":  # ended unrun, as a stop ends it
            self.stopping = True
            self.state = "done"
        elif self.state == "running":
            raise ResumeError("running")
        raise exc

    def close(self) -> None:  # §4.8
        if self.state == "done":
            return
        if self.state == "running":
            raise ResumeError("running")
        self.Stop()
        self.Next()

    def run(self, fn: Callable[[Any], Any]) -> Any:  # §4.9; §3: a stopped body has no result
        if not self.Next():
            return self._result_of_run()
        while True:
            try:
                sent = fn(self.recv)
                if not is_s(sent):
                    raise YieldTypeError(f"cannot send {sent!r}")
            except Exception as exc:  # thrown in at the yield, for the body to handle
                if self.state != "suspended":
                    raise
                going = self._step(None, exc)
            except BaseException:
                self.close()
                raise
            else:
                going = self.state == "suspended" and self._resume(sent)
            if not going:
                return self._result_of_run()

    def _result_of_run(self) -> Any:
        if self.stopping:
            raise StoppedError("stopped before it returned")
        return self.result

    def drop(self) -> None:
        """§4.15: the last reference goes. A suspended body is closed; a body left suspended
        by a yield while stopping (README) is then killed. What the last of these raised goes
        to sys.unraisablehook."""
        error: BaseException | None = None
        if self.state == "suspended":
            try:
                self.close()
            except BaseException as e:
                error = e
        if self.zombie:
            error = self._kill() or error
        if error is not None:
            self.unraisable(error)

    def _kill(self) -> BaseException | None:
        # CoroutineExit is thrown at the yield point; every further yield of the dying body
        # raises ResumeError there, since nobody will ever resume it.
        assert self.gen is not None
        self.zombie = False
        exc: BaseException = CoroutineExit()
        while True:
            try:
                self.gen.throw(exc)
            except (StopIteration, CoroutineExit):
                return None
            except BaseException as e:
                return e
            exc = ResumeError(STOPPED)


class RefEnv:
    """What the reference body of one coroutine sees: the trace, its path, itself."""

    def __init__(self, trace: Trace, path: str, me: RefCoroutine, harness: Any) -> None:
        self.trace = trace
        self.path = path
        self.me = me
        self.harness = harness


def make_exc(kind: str) -> BaseException:
    return EXCEPTIONS[kind](kind)


def run_ref(block: Block, env: RefEnv) -> Generator[int, Any, tuple[str, int] | None]:
    """Interpret `block` as a generator; a ("ret", v) marker when it executed a return."""
    trace = env.trace
    for node in block:
        kind = node[0]
        if kind == "yield":
            _, v, site = node
            got = yield v
            if got is NOTHING:
                if site == "int":
                    raise YieldTypeError("resumed without a value")
                got = None
            trace.append(("got", env.path, got))
        elif kind == "yield_bad":
            raise YieldTypeError("not an int")
        elif kind == "raise":
            raise make_exc(node[1])
        elif kind == "return":
            trace.append(("return", env.path, node[1]))
            return ("ret", node[1])
        elif kind == "stop_self":
            env.me.Stop()
        elif kind == "self_op":
            env.harness.self_op(env.me, node[1], env.path)
        elif kind == "call":
            yield from run_ref(node[1], env)
        elif kind == "try":
            r = yield from _try_ref(node, env)
            if r is not None:
                return r
        elif kind == "with":
            with Recorder(trace, node[1]):
                r = yield from run_ref(node[2], env)
            if r is not None:
                return r
        elif kind == "inner":
            r = yield from _inner_ref(node, env)
            if r is not None:
                return r
        else:  # pragma: no cover
            raise AssertionError(node)
    return None


def _try_ref(node: tuple[Any, ...], env: RefEnv) -> Generator[int, Any, tuple[str, int] | None]:
    _, nid, block, handlers, fin = node
    env.trace.append(("try", nid))
    try:
        try:
            return (yield from run_ref(block, env))
        except BaseException as e:
            for name, hblock in handlers:
                if isinstance(e, CATCHABLE[name]):
                    env.trace.append(("caught", nid, type(e).__name__))
                    return (yield from run_ref(hblock, env))
            raise
    finally:
        if fin is not None:
            env.trace.append(("finally", nid))
            yield from run_ref(fin, env)


def _inner_ref(node: tuple[Any, ...], env: RefEnv) -> Generator[int, Any, tuple[str, int] | None]:
    _, nid, block, before, outer_block, after, with_return = node
    path = f"{env.path}/{nid}"
    harness = env.harness

    def body(me: RefCoroutine) -> Generator[int, Any, Any]:
        r = yield from run_ref(block, RefEnv(env.trace, path, me, harness))
        return None if r is None else r[1]

    box: list[Any] = [RefCoroutine(body, with_return)]
    box[0].unraisable = harness.unraisable
    try:
        harness.drive(box, before, path)
        r = yield from run_ref(outer_block, env)
        harness.drive(box, after, path)
        return r
    finally:
        harness.drop(box, path)


def ref_body(block: Block, trace: Trace, path: str, harness: Any) -> Callable[..., Any]:
    def body(me: RefCoroutine) -> Generator[int, Any, Any]:
        r = yield from run_ref(block, RefEnv(trace, path, me, harness))
        return None if r is None else r[1]

    return body
