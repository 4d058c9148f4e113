"""Queues with a concurrency limit, and time limits: what the stores add to a claim.

Theory of operation. A workflow started from a function marked ``@workflow(queue="q")``
carries its queue's name in its row; ``Engine.set_queue("q", n)`` records ``n`` in the
store. A *slot* of the queue is nothing but a current claim on a row of that queue: the
store lets a worker claim such a row only while fewer than ``n`` rows of the queue are
claimed, in the same atomic operation as the claim. So the slot is fenced as the claim is,
and freed by everything that frees a claim: the commit that ends a step or a batch, a
release, a cancel, the reaping of a dead worker, the supervisor's `Store.stale`. A row
waiting for a slot is simply not claimable: it holds no worker and no lease, and claims go
past it to the next ready row. A row whose lease ran out keeps its slot until it is claimed
again (the slot moves with it); a row past its deadline is claimable whatever its queue, so
that the step that fails it is not held up.

Each backend makes the check atomic in its own way:

* SQLite: the claim is one statement inside ``BEGIN IMMEDIATE`` (`SLOT` in its ``WHERE``);
  writers are serialized, so the count it reads cannot change before the claim commits.
* PostgreSQL: claimers run concurrently (``SKIP LOCKED``), so two could each count a free
  slot and take two rows. The claim (with `SLOT`, which skips full queues cheaply) commits,
  then `confirm_slot` takes a transaction-level advisory lock on the queue and counts again
  with a fresh snapshot: the confirmations of one queue are serialized, each sees every
  claim committed before it, and one that finds the queue over its limit gives its claim
  back in the same transaction. So two claims of one queue never both pass.
* Redis: the claim script counts the queue's claimed rows (the ids kept in ``P:qheld:Q``,
  checked against their rows) before claiming; scripts run one at a time.

*Parking.* A claim walks the ready rows in ``due`` order and passes over those of full
queues; with thousands waiting it would read them all at every claim. So the stores park
them: before a claim (SQL: `QueueSQL.tidy`, in the claim's transaction) the ready, free
rows of each full queue without a time limit get ``PARK`` added to their ``due``, which
takes them out of the range a claim reads and keeps their order; as many of a queue's
parked rows as it has free slots, the oldest first, get it taken off again. (A row with a
time limit is not parked: it must be claimable at its deadline, full queue or not.) A
parked row is only ever a ready one, so nothing but its position in the walk changes: the
claim's own check (`SLOT`) still decides. An idle worker's read of "anything to claim?"
counts a queue with a free slot and a parked row. On Redis the claim script parks the rows
its walk passes over and unparks first (`REDIS_PARKING`); the supervisor's pass unparks.

A queue that was never given a limit has none. A time limit (``@workflow(timeout=s)``) is
stored as the row's deadline when the workflow starts; the runner fails the workflow with
`WorkflowTimeoutError` when it claims a step after the deadline (`timed_out`).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._errors import WorkflowTimeoutError
from ._records import encode_error

if TYPE_CHECKING:
    from ._store import Claim

__all__ = ["SLOT", "SQL", "SQL_SCHEMA", "QueueRedis", "QueueSQL", "check_queue", "timed_out"]

UNLIMITED = 2**31 - 1  # the concurrency of a queue that was never set
# Added to a parked row's due (see Parking): beyond every time a row is due at (a sleep of
# thirty thousand years excepted), below `_waits.FOREVER` (1e13), and small enough that a
# float keeps a tenth of a millisecond of the original.
PARK = 1e12
_PARKED = f"due >= {PARK!r} AND due < {2 * PARK!r}"

# How many rows of queue ``q`` are claimed (through the index ``P_queue_held``).
_HELD = (
    "(SELECT count(*) FROM {p}_workflows h WHERE h.queue = q.name AND h.owner <> ''"
    " AND h.status = 'running')"
)

# The claimable condition of a row ``w`` (one ``?``: now): the SQL stores' claim statements
# include it. The full queues are one uncorrelated subquery, computed once per statement,
# not once per row.
SLOT = (
    "(w.queue = '' OR w.owner <> '' OR (w.deadline > 0 AND w.deadline <= ?) OR w.queue NOT IN"
    f" (SELECT q.name FROM {{p}}_queues q WHERE {_HELD} >= q.concurrency))"
)

SQL_SCHEMA = [
    # A queue's rows in due order: its ready rows to park, its parked rows to unpark.
    "CREATE INDEX IF NOT EXISTS {p}_queue ON {p}_workflows (queue, due)"
    " WHERE queue <> '' AND status = 'running'",
    # `SLOT` and "slots" count a queue's claimed rows: through this index they read those (no
    # more than the limit), not every row of the queue.
    "CREATE INDEX IF NOT EXISTS {p}_queue_held ON {p}_workflows (queue)"
    " WHERE owner <> '' AND status = 'running'",
    "CREATE TABLE IF NOT EXISTS {p}_queues (name TEXT PRIMARY KEY, concurrency {int} NOT NULL)",
]

SQL = {
    "set_queue": "INSERT INTO {p}_queues (name, concurrency) VALUES (?, ?)"
    " ON CONFLICT (name) DO UPDATE SET concurrency = excluded.concurrency",
    "queues": "SELECT name, concurrency FROM {p}_queues ORDER BY name",
    "slots": "SELECT (SELECT count(*) FROM {p}_workflows WHERE queue = ? AND owner <> ''"
    " AND status = 'running'), coalesce((SELECT concurrency FROM {p}_queues WHERE name = ?),"
    f" {UNLIMITED})",
    # Parking (`QueueSQL.tidy`): each limited queue and its free slots; park a full queue's
    # ready rows; unpark a queue's oldest parked rows.
    "free_slots": f"SELECT q.name, q.concurrency - {_HELD} FROM {{p}}_queues q ORDER BY q.name",
    "park": f"UPDATE {{p}}_workflows SET due = due + {PARK!r} WHERE queue = ? AND due <= ?"
    " AND status = 'running' AND owner = '' AND deadline = 0",
    # (The condition again outside the subquery: PostgreSQL re-checks only that one on a row
    # another claimer changed meanwhile, and must not move a row just unparked and claimed.)
    "unpark": f"UPDATE {{p}}_workflows SET due = due - {PARK!r} WHERE {_PARKED} AND n IN"
    f" (SELECT n FROM {{p}}_workflows WHERE queue = ? AND status = 'running' AND {_PARKED}"
    " ORDER BY due LIMIT ?)",
    # Anything a claim could take, parked rows included (an idle worker's read).
    "claimable": "SELECT 1 FROM {p}_workflows WHERE status = 'running' AND due <= ?"
    f" UNION ALL SELECT 1 FROM {{p}}_queues q WHERE EXISTS (SELECT 1 FROM {{p}}_workflows w"
    f" WHERE w.queue = q.name AND w.status = 'running' AND {_PARKED.replace('due', 'w.due')})"
    f" AND {_HELD} < q.concurrency LIMIT 1",
    "slot_retry": "UPDATE {p}_workflows SET due = ? WHERE id = ? AND step = ?"
    " AND status = 'running' AND owner = '' AND due <= ? AND queue <> ''",
}


def check_queue(name: object, what: str = "queue") -> str:
    """`name` if it is a valid queue name; TypeError saying what it must be otherwise."""
    if not isinstance(name, str) or not name or len(name) > 200:
        raise TypeError(
            f"a {what} name is a non-empty str of at most 200 characters (got {name!r})"
        )
    return name


def timed_out(claim: Claim, now: float) -> str:
    """The recorded `WorkflowTimeoutError` of a claim past its deadline, or ``""``."""
    if not claim.deadline or now < claim.deadline:
        return ""
    late = now - claim.deadline
    return encode_error(
        WorkflowTimeoutError(
            f"workflow {claim.id!r} ran past its time limit ({late:.3f} s ago), at step "
            f"{claim.step}; give @workflow a longer timeout, or none"
        )
    )


class QueueSQL:
    """The queue operations of `_sql.SQLStore` (mixed in; uses its connections)."""

    _q: dict[str, str]
    _d: Any

    _write: Callable[..., Any]  # SQLStore's: a write transaction
    _read: Callable[..., list[Any]]  # SQLStore's: the rows of one statement

    def set_queue(self, name: str, concurrency: int) -> None:
        """Record the queue's limit (replacing any earlier one)."""
        with self._write() as tx:
            tx.db.execute(self._q["set_queue"], (name, concurrency))

    def queues(self) -> dict[str, int]:
        """Every queue given a limit, with it."""
        return {str(n): int(c) for n, c in self._read("queues")}

    def tidy(self, db: Any, now: float, park: bool = True) -> None:
        """Inside a claim's transaction: park the ready rows of full queues (unless not
        `park`), and unpark as many of a queue's as it has free slots (see Parking)."""
        for name, free in db.execute(self._q["free_slots"]).fetchall():
            if int(free) <= 0:
                if park:
                    db.execute(self._q["park"], (name, now))
            else:
                db.execute(self._q["unpark"], (name, int(free)))

    def slot_retry(self, id: str, step: int, now: float, until: float) -> bool:
        """As `Store.slot_retry` (a claim of it that failed was, most likely, refused for
        want of a slot)."""
        with self._write(single=True) as tx:
            return bool(tx.db.execute(self._q["slot_retry"], (until, id, step, now)).rowcount)

    def confirm_slot(self, claim: Claim) -> bool:
        """PostgreSQL, after a claim of a queued row committed: True iff the queue is within
        its limit, counted under the queue's lock; else the claim is given back."""
        now = time.time()
        if claim.deadline and claim.deadline <= now:
            return True  # its step only fails it
        # One bigint key per (store, queue): apart from the workers' two-int4 liveness locks.
        key = (self._d.classid << 32) | zlib.crc32(claim.queue.encode())
        with self._write() as tx:
            tx.db.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
            held, limit = tx.db.execute(self._q["slots"], (claim.queue, claim.queue)).fetchone()
            if int(held) <= int(limit):
                return True
            args = (now, "", claim.id, claim.owner, claim.fence)
            tx.db.execute(self._q["release"], args)
        return False


class QueueRedis:
    """The queue operations of `_redis.RedisStore` (mixed in)."""

    _r: Any
    _p: str
    _script: Callable[[str, str], Any]  # `_redis_waits.RedisWaits`'s: a cached script

    def set_queue(self, name: str, concurrency: int) -> None:
        """Record the queue's limit (replacing any earlier one)."""
        self._r.hset(f"{self._p}:queues", name, concurrency)

    def queues(self) -> dict[str, int]:
        """Every queue given a limit, with it."""
        got = self._r.hgetall(f"{self._p}:queues")
        return {k.decode(): int(v) for k, v in sorted(got.items())}

    def slot_retry(self, id: str, step: int, now: float, until: float) -> bool:
        """As `Store.slot_retry`."""
        keys = [f"{self._p}:wf:{id}", f"{self._p}:ready"]
        retry = self._script("_q_retry", REDIS_SLOT_RETRY)  # registered once, then by its hash
        return bool(retry(keys, [str(step), repr(now), repr(until), id]))


# `QueueRedis.slot_retry`: ARGV step, now, until, id.
REDIS_SLOT_RETRY = """
local f = redis.call('HMGET', KEYS[1], 'status', 'step', 'owner', 'due', 'queue')
if f[1] ~= 'running' or f[2] ~= ARGV[1] or f[3] ~= '' or f[5] == false or f[5] == ''
   or tonumber(f[4]) > tonumber(ARGV[2]) then
  return 0
end
redis.call('HSET', KEYS[1], 'due', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
return 1
"""


# Parking on Redis (see Parking; `_redis._CLAIM` parks, it and `_redis._STALE` unpark): a
# parked row's score and ``due`` have PARK added, and the sorted set ``P:qpark:Q`` holds it
# under its own due. held_in(q, wfp, heldp): the claimed rows of queue q, from the set
# ``P:qheld:Q`` (pruned of rows no longer claimed as it goes); wfp is the rows' key prefix.
# unpark(ready, limits, wfp, heldp, parkp): each limited queue takes back as many of its
# parked rows as it has free slots, the oldest first (a row claimed, cancelled or gone
# meanwhile is dropped from the set).
REDIS_PARKING = f"""
local PARK = {PARK!r}
local function held_in(q, wfp, heldp)
  local held = 0
  for _, h in ipairs(redis.call('SMEMBERS', heldp .. q)) do
    local g = redis.call('HMGET', wfp .. h, 'owner', 'status')
    if g[1] and g[1] ~= '' and g[2] == 'running' then held = held + 1
    else redis.call('SREM', heldp .. q, h) end
  end
  return held
end
local function unpark(ready, limits, wfp, heldp, parkp)
  local lims = redis.call('HGETALL', limits)
  for i = 1, #lims, 2 do
    local pk = parkp .. lims[i]
    if redis.call('ZCARD', pk) > 0 then
      local free = tonumber(lims[i + 1]) - held_in(lims[i], wfp, heldp)
      while free > 0 do
        local top = redis.call('ZPOPMIN', pk)
        if #top == 0 then break end
        local g = redis.call('HMGET', wfp .. top[1], 'status', 'owner', 'due')
        if g[1] == 'running' and g[2] == '' and tonumber(g[3]) >= PARK then
          redis.call('HSET', wfp .. top[1], 'due', top[2])
          redis.call('ZADD', ready, top[2], top[1])
          free = free - 1
        end
      end
    end
  end
end
"""

# The Redis claim script's slot check (`_redis._CLAIM`): free_slot(queue, owner, deadline).
# KEYS[2] is the hash of limits, ARGV[3] now, ARGV[6] the rows' key prefix, ARGV[8] the
# prefix of the sets of claimed ids per queue. Needs REDIS_PARKING before it.
REDIS_FREE_SLOT = """
local full = {}
local function free_slot(q, owner, deadline)
  if q == '' or owner ~= '' or (deadline > 0 and deadline <= tonumber(ARGV[3])) then
    return true
  end
  if full[q] == nil then
    local limit = tonumber(redis.call('HGET', KEYS[2], q) or '')
    full[q] = limit ~= nil and held_in(q, ARGV[6], ARGV[8]) >= limit
  end
  return not full[q]
end
"""
