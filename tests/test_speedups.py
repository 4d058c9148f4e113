"""The compiled switch protocol (`coroutine._speedups`) against its reference, pure Python.

The whole suite runs twice in CI, accelerated and with ``COROUTINE_PURE=1``; this file
checks that those really are two implementations, that they agree on one transcript of
every driving path, and what only the compiled one promises (no library frames in
tracebacks, flat reference counts).
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

import pytest

import coroutine
from coroutine import Coroutine, New, NewWithReturn, Run, Yield, _accel, _run

PURE = os.environ.get("COROUTINE_PURE", "") not in ("", "0")
SCRIPTS = Path(__file__).parent / "subprocess_scripts"
LIBRARY = os.path.dirname(os.path.abspath(coroutine.__file__)) + os.sep
accelerated_only = pytest.mark.skipif(PURE, reason="the compiled path is off (COROUTINE_PURE)")


def _python(code: str, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k not in ("COROUTINE_PURE",)}
    environ.update(env)
    done = subprocess.run(
        [sys.executable, "-c", code], env=environ, capture_output=True, text=True, check=True
    )
    return done.stdout + done.stderr


def test_the_extension_is_loaded_unless_forced_pure() -> None:
    # So that CI cannot silently run the pure path twice.
    methods = {n: Coroutine.__dict__[n] for n in _accel.PURE_METHODS}
    if PURE:
        assert not coroutine.ACCELERATED and _accel.speedups is None
        assert methods == _accel.PURE_METHODS
        assert coroutine.Run is _run.Run is _accel.py_run
    else:
        assert coroutine.ACCELERATED, _accel.REASON
        assert all(methods[n] is not _accel.PURE_METHODS[n] for n in methods)
        assert type(Yield[int, int]).__name__ == "YieldSite"
        assert coroutine.Run is _run.Run is _accel.speedups.Run  # type: ignore[union-attr]


def test_every_module_calls_the_resume_of_the_implementation_in_use() -> None:
    # `_accel` rebinds the name in the modules that call it; a module importing `resume`
    # after the package wired the extension in gets the compiled one too (`_async`).
    expected = _accel.py_resume if PURE else _accel.speedups.resume  # type: ignore[union-attr]
    # (Not the extension itself, which defines it: the decoder's differential test imports
    # it on the pure run too.)
    holders = {
        name: module.resume is expected
        for name, module in sys.modules.items()
        if name.startswith("coroutine.")
        and hasattr(module, "resume")
        and name != "coroutine._speedups"
    }
    assert {"coroutine._driver", "coroutine._coroutine", "coroutine._run"} <= holders.keys()
    assert all(holders.values()), holders


def test_coroutine_pure_disables_the_extension_in_a_fresh_interpreter() -> None:
    code = (
        "import coroutine, coroutine._accel as a, coroutine._driver as d; "
        "print(coroutine.ACCELERATED, d.resume is a.py_resume, "
        "coroutine.Coroutine.Next is a.PURE_METHODS['Next'], "
        "'coroutine._speedups' in __import__('sys').modules)"
    )
    assert _python(code, COROUTINE_PURE="1").split() == ["False", "True", "True", "False"]
    if not PURE:
        assert _python(code).split() == ["True", "False", "False", "True"]


def test_a_missing_extension_is_quiet_unless_debugging() -> None:
    code = (
        "import sys, warnings; warnings.simplefilter('always'); "
        "sys.modules['coroutine._speedups'] = None; "
        "import coroutine, coroutine._accel as a; print(coroutine.ACCELERATED, a.REASON)"
    )
    quiet = _python(code)
    assert quiet.startswith("False pure Python: the C extension") and "Warning" not in quiet
    loud = _python(code, COROUTINE_DEBUG="1")
    assert loud.count("RuntimeWarning: coroutine runs pure Python") == 1


@pytest.mark.skipif(PURE, reason="compares the two implementations from the accelerated run")
def test_both_implementations_write_the_same_transcript() -> None:
    script = str(SCRIPTS / "transcript.py")
    env = {k: v for k, v in os.environ.items() if k != "COROUTINE_PURE"}
    runs = [
        subprocess.run(
            [sys.executable, script], env=e, capture_output=True, text=True, check=True
        ).stdout
        for e in (env, {**env, "COROUTINE_PURE": "1"})
    ]
    assert runs[0].count("\n") > 50
    assert runs[0] == runs[1]


def _counter() -> int:
    x = 0
    for _ in range(3):
        x = Yield[int, int](x + 1)
    return x


def _library_frames(exc: BaseException) -> list[str]:
    return [
        f"{f.filename}:{f.name}"
        for f in traceback.extract_tb(exc.__traceback__)
        if f.filename.startswith(LIBRARY)
    ]


def _fails() -> None:
    Yield[int, int](1)
    raise KeyError("body")


@accelerated_only
@pytest.mark.parametrize(
    "drive",
    [
        lambda c: c.Next(),
        lambda c: next(c),
        lambda c: c.send(1),
        lambda c: Run(c, lambda v: v),
    ],
    ids=["Next", "next", "send", "Run"],
)
def test_a_body_exception_shows_the_driving_line_then_the_body(drive: Any) -> None:
    c = New[int, int](_fails)
    c.Next()
    c.Send(0)
    with pytest.raises(KeyError) as info:
        drive(c)
    frames = traceback.extract_tb(info.value.__traceback__)
    names = [f.name for f in frames]
    assert names[-1] == "_fails"
    assert _library_frames(info.value) == []  # Run is the compiled loop itself


@accelerated_only
def test_an_exception_thrown_in_has_no_library_frame_at_the_yield() -> None:
    def body() -> None:
        Yield[int, int](1)

    c = New[int, int](body)
    c.Next()
    with pytest.raises(ValueError) as info:
        c.throw(ValueError("in"))
    names = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
    assert names[-1] == "body"
    assert _library_frames(info.value) == []  # (throw calls the Python one, and trims)


def _echo() -> None:
    x: object = None
    while True:
        x = Yield[object, object](x)


def _rounds(n: int, sent: object, result: object) -> None:
    c = New[object, object](_echo)
    c.Next()
    for _ in range(n):
        c.Send(sent)
        c.Next()
        if c.Recv() is not sent or c.send(sent) is not sent:
            raise AssertionError("the value did not come back")
    c.close()
    for _ in range(n):
        Run(NewWithReturn[object, object](lambda: Yield[object, object](result)), lambda v: v)
        Run(NewWithReturn[object, object](lambda: result), lambda v: v)


def test_reference_counts_stay_flat_over_round_trips() -> None:
    # (benchmarks/bench_refcount.py runs 10**6.) A warm-up round first: the last finished
    # coroutine's Context may outlive it until the next one (both implementations).
    sent, result = object(), object()
    _rounds(10, sent, result)
    before = sys.getrefcount(sent), sys.getrefcount(result)
    _rounds(3000, sent, result)
    assert (sys.getrefcount(sent), sys.getrefcount(result)) == before


def test_the_yield_table_answers_by_identity_and_by_equality() -> None:
    fn = Yield[int, int]
    assert Yield[int, int] is fn
    assert Yield[(int, int)] is fn
    assert Yield[list[int], int] is Yield[list[int], int]  # equal, not identical, forms
    with pytest.raises(TypeError, match="two type arguments"):
        Yield[int]  # type: ignore[misc]


def test_only_run_body_sets_the_current_coroutine_variable() -> None:
    # The compiled yield caches CURRENT's value per contextvars context (see current_ctx in
    # _speedups_c/yieldsite.c): sound only while run_body, first thing in a body's fresh
    # context, is the one place that sets it.
    import ast

    setters = []
    for path in Path(coroutine.__file__).parent.rglob("*.py"):
        for func in ast.walk(ast.parse(path.read_text())):
            if isinstance(func, ast.FunctionDef):
                for node in ast.walk(func):
                    text = ast.unparse(node) if isinstance(node, ast.Call) else ""
                    if text.startswith(("CURRENT.set(", "CURRENT.reset(", "_context.CURRENT.set(")):
                        setters.append(f"{path.name}:{func.name}")
    assert setters == ["_worker.py:run_body"]


def test_a_worker_failing_before_the_body_starts_leaves_it_created() -> None:
    # The worker woken for the body raises before the body starts: the exception escapes
    # the worker into the driver's switch (rule D2), and recover (called from C when
    # accelerated) rolls back (D3). A parked worker of the pool that breaks on waking stands
    # for the first instruction of either worker loop (the compiled one has no Python line to
    # break, and both pop the same pool).
    import greenlet

    from coroutine import _worker

    def broken() -> None:
        greenlet.getcurrent().parent.switch(_worker.PARKED)  # type: ignore[union-attr]
        raise LookupError("worker broke")

    w = greenlet.greenlet(broken)
    w.switch()  # parked
    c = NewWithReturn[int, int](_counter)
    pool = getattr(_worker._local, "pool", None)
    if pool:  # (earlier tests in this process may have filled it to the cap)
        pool.pop()
    _worker.release(w)
    assert _worker._local.pool[-1] is w
    with pytest.raises(LookupError, match="worker broke"):
        c.Next()
    assert c.status == "created" and c._g is None and w.dead
    assert c.Next() and c.Recv() == 1
    c.close()
    assert c.status == "done"


def _returns() -> int:
    return 5


def _raises() -> None:
    raise KeyError("body")


def _yields_then_returns() -> int:
    Yield[int, Any](1)
    return 6


def _catches_the_stop() -> int:
    try:
        Yield[int, Any](1)
    except coroutine.CoroutineExit:
        return 9  # a stopped body's result is not kept
    return 0


def _yields_while_stopping() -> None:
    try:
        Yield[int, Any](1)
    finally:
        Yield[int, Any](2)  # abandoned: the stop raises ResumeError, the body stays suspended


def _outcome(make: Any, body: Any, ops: list[str], pure_worker: bool) -> list[object]:
    """What driving a coroutine shows, run by a compiled or a Python `_worker_main` worker."""
    import greenlet

    from coroutine import _worker

    pool = _worker._local.__dict__.setdefault("pool", [])
    pool.clear()
    if pure_worker:
        w = greenlet.greenlet(_worker._worker_main)
        w.switch()  # parked, as the Python acquire leaves a new one
        _worker.release(w)
    seen: list[object] = []

    def run() -> Any:
        frame = sys._getframe()
        while frame.f_back is not None:
            frame = frame.f_back
        seen.append(frame.f_code.co_name)  # the worker's own frame, under the body's
        seen.append("pure" if frame.f_code is _worker._worker_main.__code__ else "compiled")
        return body()

    c = make(run)
    for op in ops:
        try:
            seen.append(getattr(c, op)())
        except BaseException as exc:
            seen.append((type(exc).__name__, str(exc), type(exc.__cause__).__name__))
            seen.append(exc.__suppress_context__)
            seen.append([f.name for f in traceback.extract_tb(exc.__traceback__)])
        seen.append(c.status)
    seen.append(c.Result() if hasattr(c, "Result") and c.status == "done" else None)
    seen.append(len(pool))  # the worker parked back in the pool (or not)
    pool.clear()
    return seen


@accelerated_only
@pytest.mark.parametrize(
    ("make", "body", "ops"),
    [
        (NewWithReturn[int, Any], _returns, ["Next"]),
        (New[int, Any], _returns, ["Next"]),
        (New[int, Any], _raises, ["Next"]),
        (New[int, Any], lambda: _stops(), ["Next"]),
        (NewWithReturn[int, Any], _yields_then_returns, ["Next", "Next"]),
        (NewWithReturn[int, Any], _yields_then_returns, ["Next", "close"]),
        (NewWithReturn[int, Any], _catches_the_stop, ["Next", "close"]),
        (New[int, Any], _yields_while_stopping, ["Next", "close"]),
    ],
)
def test_the_compiled_worker_loop_runs_a_body_as_the_python_one(
    make: Any, body: Any, ops: list[str]
) -> None:
    # `_accel.worker_main` is `_worker._worker_main` with `run_body`'s steps and the parking
    # switch copied into C (`_speedups.worker_*`): every way a body ends, driven through a
    # pooled Python worker and through a compiled one, shows the same results, errors,
    # tracebacks, states and pooling; only the worker's own frame differs.
    pure = _outcome(make, body, ops, pure_worker=True)
    compiled = _outcome(make, body, ops, pure_worker=False)
    assert "pure" in pure and "compiled" not in pure
    assert "compiled" in compiled and "pure" not in compiled
    norm = {"_worker_main": "worker", "worker_main": "worker", "pure": "-", "compiled": "-"}
    assert [norm.get(x, x) if isinstance(x, str) else x for x in pure] == [
        norm.get(x, x) if isinstance(x, str) else x for x in compiled
    ]


@accelerated_only
def test_coroutines_of_one_thread_share_their_thread_ident() -> None:
    # The compiled creation reuses the thread's ident int: 32 bytes less per coroutine.
    import threading

    a, b = New[int, Any](lambda: None), New[int, Any](lambda: None)
    assert a._ctx._thread is b._ctx._thread
    assert a._ctx._thread == threading.get_ident()
    seen: list[int] = []
    t = threading.Thread(target=lambda: seen.append(New[int, Any](lambda: None)._ctx._thread))
    t.start()
    t.join()
    assert seen == [t.ident]
    assert New[int, Any](lambda: None)._ctx._thread == threading.get_ident()


def _stops() -> None:
    raise StopIteration(7)


def test_a_body_raising_stop_iteration_reports_a_runtime_error_in_both() -> None:
    # run_body's PEP 479 rule.
    c = New[int, Any](_stops)
    with pytest.raises(RuntimeError, match=r"^coroutine body raised StopIteration$") as info:
        c.Next()
    cause = info.value.__cause__
    assert isinstance(cause, StopIteration) and cause.args == (7,)
    assert info.value.__suppress_context__
    assert traceback.extract_tb(cause.__traceback__)[-1].name == "_stops"
    assert c.status == "done"


def _shape(fn: Any) -> list[tuple[str, Any]]:
    """A signature's parameters as names and kinds (a text signature holds no annotation;
    a C method's self is positional-only, as it is in effect for a Python one)."""
    return [
        (p.name, None if p.name == "self" else p.kind)
        for p in inspect.signature(fn).parameters.values()
    ]


@accelerated_only
def test_each_compiled_method_documents_itself_as_the_python_one_it_stands_for() -> None:
    compiled = {name: Coroutine.__dict__[name] for name in _accel.PURE_METHODS}
    compiled["Run"] = coroutine.Run
    pure = {**_accel.PURE_METHODS, "Run": _accel.py_run}
    for name, fn in compiled.items():
        assert fn.__doc__ == pure[name].__doc__, name
        assert fn.__text_signature__ is not None, name
        assert _shape(fn) == _shape(pure[name]), name
    assert inspect.signature(coroutine.Coroutine.Send).parameters["v"].kind.name == (
        "POSITIONAL_ONLY"
    )


@accelerated_only
def test_every_function_and_method_of_the_extension_has_a_docstring_and_a_signature() -> None:
    ext = _accel.speedups
    found = []
    for owner in (ext, *(v for v in vars(ext).values() if isinstance(v, type))):
        for name, member in vars(owner).items():
            if type(member).__name__ in ("builtin_function_or_method", "method_descriptor"):
                found.append(f"{getattr(owner, '__name__', owner)}.{name}")
                assert member.__doc__, found[-1]
                assert member.__text_signature__ is not None, found[-1]
    assert {"coroutine._speedups.Run", "YieldTable._forget", "Bridge.throw"} <= set(found)


def test_new_is_subscripted_through_one_factory_per_type_pair_and_kind() -> None:
    # The compiled __getitem__ of their metaclass answers from an identity cache; whatever
    # answers, the same pair gives the same factory, and New's and NewWithReturn's stay apart
    # (a subclass of New too: the cache is keyed by the class).
    assert New[int, Any] is New[int, Any]
    assert NewWithReturn[int, Any] is NewWithReturn[int, Any]
    assert New[int, Any] is not NewWithReturn[int, Any]
    assert Run(NewWithReturn[int, Any](lambda: 5), lambda v: v) == 5
    assert Run(New[int, Any](lambda: 5), lambda v: v) is None
    for _ in range(2):  # a miss, then what the cache would answer
        with pytest.raises(TypeError, match=r"got NewWithReturn\[int\]"):
            NewWithReturn[int]

    class Mine(New):  # type: ignore[type-arg]
        __slots__ = ()

    assert Mine[int, Any] is New[int, Any]  # __class_getitem__'s answer, New's factories
    if not PURE:
        assert type(vars(type(New))["__getitem__"]).__name__ == "Subscript"
        assert type(New[int, Any]).__name__ == "Factory"


def test_creation_sees_a_change_of_its_remembered_lookups(monkeypatch: pytest.MonkeyPatch) -> None:
    # The compiled creation remembers `_new.DURABLE` and this thread's pool while their
    # dictionaries are unchanged (their version tags, speedups.h's memo_lookup): a change
    # in between is seen by the next creation, a replaced pool by the next release.
    from coroutine import _new, _worker

    for _ in range(2):
        c = New[int, Any](lambda: None)
        assert c._ctx._durable is None
        c.Next()
    monkeypatch.setattr(_new, "DURABLE", True)
    assert New[int, Any](lambda: None)._ctx._durable is not None
    monkeypatch.setattr(_new, "DURABLE", False)
    assert New[int, Any](lambda: None)._ctx._durable is None
    old = _worker._local.pool
    assert old
    fresh: list[object] = []
    _worker._local.pool = fresh
    New[int, Any](lambda: None).Next()  # a new worker: the fresh pool is empty
    assert len(fresh) == 1 and fresh[0] not in old
    w = fresh[0]
    New[int, Any](lambda: None).Next()  # taken from the fresh pool and put back
    assert fresh == [w]
    del _worker._local.pool
    New[int, Any](lambda: None).Next()
    assert _worker._local.pool not in (old, fresh) and len(_worker._local.pool) == 1


class _Held:
    pass


def _give(x: object) -> object:
    return x


def test_a_dropped_coroutine_releases_what_it_held() -> None:
    # Coroutine's and Context's deallocation (compiled: methods.c's slots_dealloc, in place
    # of CPython's generic one): every slot released, weak references to both cleared, the
    # finalizer run for a body left suspended.
    import functools
    import gc
    import weakref

    entry, result = _Held(), _Held()
    c = NewWithReturn[int, Any](functools.partial(_give, result))
    c.Next()
    d = New[int, Any](functools.partial(_give, entry))
    refs = [weakref.ref(x) for x in (entry, result, c, c._ctx, d, d._ctx)]
    del entry, result, c, d
    assert [r() for r in refs] == [None] * 6  # by reference counting alone
    unwound: list[str] = []

    def suspended() -> None:
        try:
            Yield[int, Any](1)
        finally:
            unwound.append("finally")

    s = New[int, Any](suspended)
    s.Next()
    ref = weakref.ref(s)
    del s
    gc.collect()
    assert unwound == ["finally"] and ref() is None


def test_a_long_chain_of_coroutines_is_freed_without_exhausting_the_stack() -> None:
    # Each holds the previous one as its result, and nothing else does (the entry is a
    # list's pop): freeing the last frees the chain one by one, deferred by CPython's
    # trashcan rather than nested on the C stack (no tuple, which has its own, in between).
    head: object = None
    for _ in range(300_000):
        c = NewWithReturn[int, Any]([head].pop)
        c.Next()
        head = c
    del c
    del head


# -- Coroutine and Context objects kept for reuse (methods.c, `new_instance`) ----------------


def test_a_reused_coroutine_starts_with_no_weak_reference_and_fresh_slots() -> None:
    import gc
    import weakref

    for _ in range(40):
        c = New[int, Any](lambda: Yield[int, Any](1))
        ctx = c.Context()
        assert weakref.getweakrefcount(c) == 1  # its Context's, only
        assert weakref.getweakrefcount(ctx) == 0 and c.status == "created"
        assert gc.is_tracked(c) and gc.is_tracked(ctx)  # seen by the collector, as new
        r, rc = weakref.ref(c), weakref.ref(ctx)
        assert c.Next() and c.Recv() == 1
        del c, ctx
        assert r() is None and rc() is None
