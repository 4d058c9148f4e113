"""Workflow throughput: activity steps per second, through the store, with real workers.

    python -m benchmarks.bench_workflow [--quick] [--broker redis://127.0.0.1:6379/0]
    python -m benchmarks.bench_workflow --claims [--queued 1000,10000,100000] [--full-queue]
    python -m benchmarks.bench_workflow --celery-row [--rounds 3] [--steps 500]
    .venv-bench/3.11/bin/python -m benchmarks.bench_workflow --dbos [--rounds 3]

Needs the ``workflow`` extra (``pip install -e '.[workflow]'``) and, for the Celery rows,
Redis at --broker. Every figure is measured end to end, with worker processes: the time from
the first ``Engine.start`` until the store shows no running workflow, divided by the
activity calls (workflow steps) made. The activity itself does nothing, so this is the
engine's own cost: claim, resume (live or by replay), commit.

* long: one workflow of --steps steps (only one worker can hold it at a time);
* short: --workflows workflows of 2 steps each;
* SQLite: ``python -m coroutine.workflow worker`` processes over one SQLite file;
* Celery: ``python -m coroutine.workflow celery-worker`` processes (threads pool, one task at
  a time), one Celery task per step, state in the same SQLite file;
* sticky: workers keep live coroutines and resume them; replaying: ``--no-sticky``, every
  step rebuilt from the stored state (``Unmarshal`` + replay of the body).

The prototype's floor (issue 14): 1,111 steps/s sticky and 85 steps/s replaying on SQLite.

``--celery-row`` measures one long workflow on one worker, side by side in one run (the
configurations alternated in each of ``--rounds`` rounds): a ``worker`` process on a Redis
store alone, against one ``celery-worker`` with a Redis broker and the same Redis as its store,
eager (a task runs up to 100 steps in a row, the default) and not (``--batch 1``: one broker
message per step, as before eager execution).

``--dbos`` runs ours and DBOS side by side (``benchmarks/dbos_side.py``; DBOS installed only
in the benchmark's environment: ``python3.11 -m venv .venv-bench/3.11 && .venv-bench/3.11/bin/pip
install dbos -e '.[workflow]'``), the configurations alternated in each round: one workflow of
--steps steps and --workflows workflows of 2 steps, ours on one ``worker`` process over a
SQLite file (WAL, ``synchronous=NORMAL``) and over PostgreSQL, DBOS in one process over SQLite
with its defaults, over SQLite with WAL and ``synchronous=NORMAL`` (equal durability: both
survive a killed process, not a power cut) and over PostgreSQL (the server's
``synchronous_commit`` for both).

``--claims`` measures what one claim costs with 1,000, 10,000 and 100,000 workflows queued,
on each store (``--stores``): the median of 300 claims, each followed by a release, so the
queue keeps its length. A claim reads the queue through an index on its order, so the cost
should not grow with the queue. With ``--full-queue`` the queued workflows are of a queue of
one whose slot is taken, and the claim is of the one workflow outside it, due after them all:
what a claim costs that passes over the ready workflows of a full queue.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from coroutine.workflow import CeleryExecutor, Engine, activity, workflow

ROOT = Path(__file__).resolve().parent.parent
PROTOTYPE = {"sticky": 1111.0, "replaying": 85.0}


@activity
def bump(x: int) -> int:
    return x + 1


def long_flow(n: int) -> int:
    x = 0
    for _ in range(n):
        x = bump(x)
    return x


def short_flow() -> int:
    return bump(bump(0))


@workflow(queue="bench-full")
def queued_flow() -> int:
    """A workflow of a queue that `claims --full-queue` keeps full."""
    return bump(0)


def _start_workers(n: int, executor: str, url: str, broker: str, queue: str, sticky: bool) -> list:
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    env["C_FORCE_ROOT"] = "1"
    extra = [] if sticky else ["--no-sticky"]
    procs = []
    for i in range(n):
        if executor == "sqlite":
            args = ["worker", url, *extra]
        else:
            args = ["celery-worker", broker, "--queue", queue, "--name", f"b{i}", *extra]
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "coroutine.workflow", *args],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                cwd=ROOT,
            )
        )
    return procs


def _wait(engine: Engine, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while engine.store.count_running():
        if time.monotonic() > deadline:
            raise TimeoutError("workflows still running")
        if engine.executor is not None:
            engine.run(until_idle=True, poll=0.005)
        else:
            time.sleep(0.005)


def measure(
    shape: str, executor: str, workers: int, sticky: bool, args: argparse.Namespace
) -> float:
    from benchmarks import bench_workflow as me  # the workers import it by this name

    tmp = Path(tempfile.mkdtemp(prefix="bench_workflow"))
    url = f"sqlite:///{tmp}/store.db"
    queue = f"bench{uuid.uuid4().hex[:8]}"
    procs = _start_workers(workers, executor, url, args.broker, queue, sticky)
    ex = CeleryExecutor(args.broker, queue=queue) if executor == "celery" else None
    try:
        with Engine(url, ex) as engine:
            engine.start(me.short_flow)  # warm up: every worker is up before timing
            _wait(engine)
            t = time.perf_counter()
            if shape == "long":
                engine.start(me.long_flow, args.steps)
                steps = args.steps
            else:
                for _ in range(args.workflows):
                    engine.start(me.short_flow)
                steps = 2 * args.workflows
            _wait(engine)
            elapsed = time.perf_counter() - t
            assert all(r.status == "done" for r in engine.list())
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        if ex is not None:
            ex.close()
            _drop_queues(args.broker, queue)
    return steps / elapsed


def _drop_queues(broker: str, queue: str) -> None:
    if broker.startswith("redis"):
        import redis

        r = redis.Redis.from_url(broker)
        for key in r.scan_iter(match=f"*{queue}*"):
            r.delete(key)
        for tag, message in r.hscan_iter("unacked"):  # else a later worker restores them
            if queue.encode() in message:
                r.hdel("unacked", tag)
                r.zrem("unacked_index", tag)
        r.close()


def _store_url(kind: str, args: argparse.Namespace) -> str:
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    if kind == "sqlite":
        return f"sqlite:///{tempfile.mkdtemp(prefix='bench_claims')}/store.db"
    base = args.redis if kind == "redis" else args.postgres
    return f"{base}?prefix={prefix}"


def _drop(url: str) -> None:
    prefix = url.rpartition("prefix=")[2]
    if url.startswith("redis"):
        _drop_queues(url.partition("?")[0], prefix)
    elif url.startswith("postgres"):
        import psycopg

        with psycopg.connect(url.partition("?")[0], autocommit=True) as db:
            names = db.execute(  # every table of the store, those of later schemas included
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                " AND tablename LIKE %s",
                (f"{prefix}\\_%",),
            ).fetchall()
            for (t,) in names:
                db.execute(f'DROP TABLE IF EXISTS "{t}"')


def claims(args: argparse.Namespace) -> None:
    """The cost of one claim (and its release) against the number of workflows queued."""
    sizes = [int(n) for n in args.queued.split(",")]
    print(f"CPython {sys.version.split()[0]}; ms per claim + release, median of 300")
    print()
    print("| store | " + " | ".join(f"{n:,} queued" for n in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    for kind in args.stores.split(","):
        url = _store_url(kind, args)
        cells = []
        try:
            with Engine(url) as engine:
                held = None
                if args.full_queue:  # the slot of a queue of one taken: the others wait
                    engine.set_queue("bench-full", 1)
                    engine.start(queued_flow)
                    held = engine.store.claim("holder", time.time(), 3600.0)
                    engine.start(short_flow)  # the one claimed and released, due last
                for n in sizes:
                    fast = kind == "postgres"  # fill without an fsync per start; then measure with
                    if fast:
                        engine.store._db.execute("SET synchronous_commit = off")  # type: ignore[attr-defined]
                    for _ in range(n - engine.store.count_running()):
                        engine.start(queued_flow if held else short_flow)
                    if fast:
                        engine.store._db.execute("SET synchronous_commit = on")  # type: ignore[attr-defined]
                    times = []
                    for _ in range(300):
                        t = time.perf_counter()
                        claim = engine.store.claim("bench", time.time(), 30.0)
                        assert claim is not None
                        engine.store.release(claim, time.time(), "")
                        times.append(time.perf_counter() - t)
                    times.sort()
                    cells.append(f"{times[len(times) // 2] * 1000:.3f}")
        finally:
            _drop(url)
        print(f"| {kind} | " + " | ".join(cells) + " |", flush=True)


def _on_one_worker(
    url: str, cmd: list[str], broker: str, queue: str | None, shape: str = "long"
) -> float:
    """Steps/s on one worker started with `cmd`: one `long_flow` of `STEPS` steps, or
    (`shape` ``"short"``) `WORKFLOWS` `short_flow` workflows."""
    from benchmarks import bench_workflow as me  # the workers import it by this name

    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    env["C_FORCE_ROOT"] = "1"
    proc = subprocess.Popen(
        [sys.executable, "-m", "coroutine.workflow", *cmd],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        cwd=ROOT,
    )
    ex = CeleryExecutor(broker, queue=queue) if queue else None
    try:
        with Engine(url, ex) as engine:
            engine.start(me.short_flow)  # warm up: the worker is up before timing
            _wait(engine)
            t = time.perf_counter()
            if shape == "long":
                engine.start(me.long_flow, me.STEPS)
            else:
                for _ in range(me.WORKFLOWS):
                    engine.start(me.short_flow)
            _wait(engine)
            elapsed = time.perf_counter() - t
            assert all(r.status == "done" for r in engine.list())
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if ex is not None:
            ex.close()
            _drop_queues(broker, queue or "")
    return (me.STEPS if shape == "long" else 2 * me.WORKFLOWS) / elapsed


STEPS = 500  # of the --celery-row and --dbos long workflow (set from --steps)
WORKFLOWS = 300  # of the --dbos short workflows (set from --workflows)


def celery_row(args: argparse.Namespace) -> None:
    """One long workflow on one worker: Redis store alone vs Celery over a Redis broker."""
    from benchmarks import bench_workflow as me

    me.STEPS = args.steps
    configs = {
        "Redis store, `worker`": None,
        "Celery (Redis broker + Redis store), eager": [],
        "Celery (Redis broker + Redis store), `--batch 1`": ["--batch", "1"],
    }
    got: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(args.rounds):
        for name, extra in configs.items():
            url = _store_url("redis", args)
            try:
                if extra is None:
                    got[name].append(_on_one_worker(url, ["worker", url], args.broker, None))
                else:
                    queue = f"bench{uuid.uuid4().hex[:8]}"
                    cmd = ["celery-worker", args.broker, "--queue", queue, "--name", "b0", *extra]
                    got[name].append(_on_one_worker(url, cmd, args.broker, queue))
            finally:
                _drop(url)
    print(f"CPython {sys.version.split()[0]}, {os.cpu_count()} cores; one workflow of "
          f"{args.steps} steps, one worker; steps/s, best of {args.rounds} [all]")  # fmt: skip
    print()
    print("| configuration | steps/s | Redis store / this |")
    print("|---|---|---|")
    base = max(got["Redis store, `worker`"])
    for name, runs in got.items():
        all_runs = " ".join(f"{r:,.0f}" for r in runs)
        print(f"| {name} | {max(runs):,.0f} [{all_runs}] | {base / max(runs):.2f}x |")


def dbos(args: argparse.Namespace) -> None:
    """Ours against DBOS on SQLite and PostgreSQL, side by side (see the module's doc)."""
    from benchmarks import bench_workflow as me

    me.STEPS, me.WORKFLOWS = args.steps, args.workflows
    configs = ["ours sqlite", "dbos sqlite", "dbos sqlite-wal", "ours postgres", "dbos postgres"]
    got: dict[str, list[tuple[float, float]]] = {c: [] for c in configs}
    for _ in range(args.rounds):
        for config in configs:
            who, kind = config.split()
            if who == "dbos":
                out = subprocess.run(
                    [sys.executable, "-m", "benchmarks.dbos_side", kind, str(args.steps),
                     str(args.workflows)],
                    cwd=ROOT, check=True, capture_output=True, text=True,
                    env=dict(os.environ, BENCH_POSTGRES=args.postgres),
                ).stdout.split()  # fmt: skip
                got[config].append((float(out[-2]), float(out[-1])))
                continue
            url = _store_url(kind, args)
            try:
                cmd = ["worker", url]
                rates = tuple(_on_one_worker(url, cmd, "", None, shape) for shape in me.SHAPES)
                got[config].append(rates)  # type: ignore[arg-type]
            finally:
                _drop(url)
    print(f"CPython {sys.version.split()[0]}, {os.cpu_count()} cores; steps/s, best of "
          f"{args.rounds} [all]")  # fmt: skip
    print()
    print(f"| workload | {' | '.join(configs)} |")
    print("|---|" + "---|" * len(configs))
    for i, shape in enumerate((f"1 x {args.steps} steps", f"{args.workflows} x 2 steps")):
        cells = []
        for config in configs:
            runs = [r[i] for r in got[config]]
            cells.append(f"{max(runs):,.0f} [{' '.join(f'{r:,.0f}' for r in runs)}]")
        print(f"| {shape} | {' | '.join(cells)} |")
    for i, shape in enumerate(("long", "short")):
        best = {c: max(r[i] for r in got[c]) for c in configs}
        print(f"\n{shape}: ours/DBOS at equal durability: SQLite "
              f"{best['ours sqlite'] / best['dbos sqlite-wal']:.1f}x, PostgreSQL "
              f"{best['ours postgres'] / best['dbos postgres']:.1f}x")  # fmt: skip


SHAPES = ("long", "short")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (not comparable)")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--steps", type=int, default=500, help="steps of the long workflow")
    parser.add_argument("--workflows", type=int, default=300, help="short workflows")
    parser.add_argument("--executors", default="sqlite,celery")
    parser.add_argument("--claims", action="store_true", help="claim cost against queue length")
    parser.add_argument("--queued", default="1000,10000,100000")
    parser.add_argument(
        "--full-queue",
        action="store_true",
        help="--claims with the queued workflows in a full queue",
    )
    parser.add_argument("--stores", default="sqlite,postgres,redis")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--celery-row", action="store_true", help="Celery vs Redis store")
    parser.add_argument("--dbos", action="store_true", help="ours vs DBOS, side by side")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of --celery-row, --dbos")
    args = parser.parse_args()
    if args.claims:
        claims(args)
        return
    if args.celery_row:
        celery_row(args)
        return
    if args.dbos:
        dbos(args)
        return
    if args.quick:
        args.steps, args.workflows = 100, 50
    print(f"CPython {sys.version.split()[0]}, {os.cpu_count()} cores; steps/s (higher is better)")
    print()
    print("| workload | executor | workers | sticky | replaying | sticky / replaying |")
    print("|---|---|---|---|---|---|")
    for shape in ("long", "short"):
        for executor in args.executors.split(","):
            for workers in (1, 4):
                s = measure(shape, executor, workers, True, args)
                r = measure(shape, executor, workers, False, args)
                size = f"{args.steps} steps" if shape == "long" else f"{args.workflows} x 2 steps"
                print(
                    f"| {shape} ({size}) | {executor} | {workers} | {s:,.0f} | {r:,.0f} "
                    f"| {s / r:.1f}x |",
                    flush=True,
                )
    p = PROTOTYPE
    print(
        f"| prototype floor (issue 14) | sqlite | 1 | {p['sticky']:,.0f} | {p['replaying']:,.0f} "
        f"| {p['sticky'] / p['replaying']:.1f}x |"
    )


if __name__ == "__main__":
    from benchmarks import bench_workflow

    bench_workflow.main()
