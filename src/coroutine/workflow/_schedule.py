"""Schedules: a workflow started on a cron expression, each due run once, by any worker.

Theory of operation. A schedule is a row of the store (its id, the entry and arguments to
start, the cron expression, and ``next``: the Unix time of the next run not yet started).
Every worker (``Engine.run``, and the Celery supervisor) looks for due schedules a few times a
second (`tick`). For a due schedule it starts the run with `Engine.start_as` under an id made
from the schedule's id and the run's due time (``ID@2026-12-07T05:00:00Z``), then moves
``next`` on with a compare-and-set on its old value. Two workers that see the same due run
start the same id, which the store creates once; a worker that dies between the start and
the move leaves the schedule due, and the next worker's start of the same id creates
nothing. So each run is started exactly once, however many workers are up.

Runs that fell due while no worker was up are not started one by one on their return: one
run starts, for the latest due time, and the schedule goes on from there (a catch-up of a
day of per-minute runs is seldom what anyone wants; a job that must cover the gap can read
its due time from its id). Times are UTC. Cron expressions are croniter's: five fields
(minute hour day month weekday), or six with seconds last.

The store keeps schedules in ``P_schedules`` (SQL) or ``P:sched:ID`` hashes and the
``P:sched`` sorted set by ``next`` (Redis); the mixins below are their operations.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._records import decode_value

if TYPE_CHECKING:
    from ._store import Store

__all__ = ["SQL", "SQL_SCHEMA", "ScheduleInfo", "ScheduleRedis", "ScheduleSQL"]

_log = logging.getLogger("coroutine.workflow")

EXTRA = "pip install 'stackful-coroutines[cron]'"

SQL_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS {p}_schedules (
    id TEXT PRIMARY KEY,
    entry TEXT NOT NULL,
    args TEXT NOT NULL,
    cron TEXT NOT NULL,
    next {real} NOT NULL
)""",
]

_COLS = "id, entry, args, cron, next"
SQL = {
    # Scheduling the same call again keeps its next run unless the expression changed.
    "sched_put": "INSERT INTO {p}_schedules (" + _COLS + ") VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (id) DO UPDATE SET next = CASE WHEN {p}_schedules.cron = excluded.cron"
    " THEN {p}_schedules.next ELSE excluded.next END, cron = excluded.cron",
    "sched_drop": "DELETE FROM {p}_schedules WHERE id = ?",
    "sched_list": "SELECT " + _COLS + " FROM {p}_schedules ORDER BY id",
    "sched_due": "SELECT " + _COLS + " FROM {p}_schedules WHERE next <= ? ORDER BY next LIMIT 100",
    "sched_move": "UPDATE {p}_schedules SET next = ? WHERE id = ? AND next = ?",
}

Stored = tuple[str, str, str, str, float]  # id, entry, args, cron, next


@dataclasses.dataclass(frozen=True)
class ScheduleInfo:
    """One schedule, as `Engine.schedules` tells it: its `id`, the workflow function's
    ``module:QualName`` (`entry`) and arguments, the `cron` expression, and `next`, the Unix
    time of its next run not yet started."""

    id: str
    entry: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    cron: str
    next: float


def info(row: Stored) -> ScheduleInfo:
    args, kwargs = decode_value(row[2])
    return ScheduleInfo(row[0], row[1], tuple(args), dict(kwargs), row[3], row[4])


def _croniter() -> Any:
    try:
        import croniter  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        raise ImportError(f"schedules need the cron parser croniter: {EXTRA}") from None
    return croniter.croniter


def check_cron(cron: object) -> str:
    """`cron` if croniter accepts it; ValueError saying so otherwise."""
    if not isinstance(cron, str) or not _croniter().is_valid(cron):
        raise ValueError(
            f"not a cron expression: {cron!r}; give five fields (minute hour day month "
            "weekday, e.g. '0 * * * *') or six with seconds last (e.g. '* * * * * */10')"
        )
    return cron


def _utc(t: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc)


def next_after(cron: str, t: float) -> float:
    """The first time the expression names strictly after `t` (UTC)."""
    return float(_croniter()(cron, _utc(t)).get_next(float))


def latest_by(cron: str, t: float) -> float:
    """The last time the expression names at or before `t` (UTC)."""
    return float(_croniter()(cron, _utc(t + 1e-3)).get_prev(float))


def schedule_id(entry: str, args: str) -> str:
    """The id of the schedule of a call: the same call, the same schedule."""
    return f"{entry}#{hashlib.sha256(args.encode()).hexdigest()[:10]}"


def run_id(sched: str, due: float) -> str:
    """The id of a schedule's run due at `due`."""
    return f"{sched}@{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(due))}"


def tick(
    store: Store, start_as: Callable[..., Any], reported: set[tuple[str, str]], now: float
) -> int:
    """Start the runs of `engine`'s store's schedules that are due at `now`; how many this
    call created (a run another worker created first is not counted)."""
    from ._workflows import entry_of

    created = 0
    for sid, entry, args, cron, stored in store.due_schedules(now):
        due, following = stored, next_after(cron, stored)
        if following <= now:  # runs were missed while no worker was up: only the latest
            due = latest_by(cron, now)
            following = next_after(cron, due)
        wid = run_id(sid, due)
        try:
            call = entry_of(entry, args)
            fresh = store.get(wid) is None
            start_as(wid, call.func, *call.args, **call.keywords)
        except Exception as exc:  # its code is missing here: another worker may start it
            why = f"cannot start {wid}: {type(exc).__name__}: {exc}"
            if (sid, why) not in reported:
                reported.add((sid, why))
                _log.error("schedule %s: %s", sid, why)
            continue
        created += fresh
        store.move_schedule(sid, stored, following)
    return created


class ScheduleSQL:
    """The schedule operations of `_sql.SQLStore` (mixed in; uses its connections)."""

    _q: dict[str, str]

    _write: Callable[..., Any]  # SQLStore's: a write transaction
    _read: Callable[..., list[Any]]  # SQLStore's: the rows of one statement

    def put_schedule(self, row: Stored) -> None:
        with self._write() as tx:
            tx.db.execute(self._q["sched_put"], row)

    def drop_schedule(self, id: str) -> bool:
        with self._write() as tx:
            return bool(tx.db.execute(self._q["sched_drop"], (id,)).rowcount == 1)

    def schedules(self) -> list[Stored]:
        return [(r[0], r[1], r[2], r[3], float(r[4])) for r in self._read("sched_list")]

    def due_schedules(self, now: float) -> list[Stored]:
        return [(r[0], r[1], r[2], r[3], float(r[4])) for r in self._read("sched_due", (now,))]

    def move_schedule(self, id: str, old: float, new: float) -> bool:
        with self._write() as tx:
            return bool(tx.db.execute(self._q["sched_move"], (new, id, old)).rowcount == 1)


_PUT = """
if redis.call('HGET', KEYS[1], 'cron') == ARGV[3] then return 0 end
redis.call('HSET', KEYS[1], 'entry', ARGV[1], 'args', ARGV[2], 'cron', ARGV[3], 'next', ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
return 1
"""

_MOVE = """
if redis.call('HGET', KEYS[1], 'next') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'next', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
return 1
"""


class ScheduleRedis:
    """The schedule operations of `_redis.RedisStore` (mixed in)."""

    _r: Any
    _p: str

    def _sched(self, id: str = "") -> str:
        return f"{self._p}:sched:{id}" if id else f"{self._p}:sched"

    def put_schedule(self, row: Stored) -> None:
        id, entry, args, cron, next = row
        keys = [self._sched(id), self._sched()]
        self._r.register_script(_PUT)(keys, [entry, args, cron, repr(next), id])

    def drop_schedule(self, id: str) -> bool:
        pipe = self._r.pipeline(transaction=True)
        pipe.delete(self._sched(id))
        pipe.zrem(self._sched(), id)
        return bool(pipe.execute()[0])

    def _rows(self, ids: list[Any]) -> list[Stored]:
        pipe = self._r.pipeline(transaction=False)
        names = [i.decode() for i in ids]
        for i in names:
            pipe.hmget(self._sched(i), "entry", "args", "cron", "next")
        return [
            (i, f[0].decode(), f[1].decode(), f[2].decode(), float(f[3]))
            for i, f in zip(names, pipe.execute(), strict=True)
            if f[0] is not None
        ]

    def schedules(self) -> list[Stored]:
        return sorted(self._rows(self._r.zrange(self._sched(), 0, -1)))

    def due_schedules(self, now: float) -> list[Stored]:
        return self._rows(self._r.zrangebyscore(self._sched(), "-inf", now, start=0, num=100))

    def move_schedule(self, id: str, old: float, new: float) -> bool:
        keys = [self._sched(id), self._sched()]
        return bool(self._r.register_script(_MOVE)(keys, [repr(old), repr(new), id]))
