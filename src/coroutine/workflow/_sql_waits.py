"""The SQL store's part of waiting (`_waits`): timers, messages, events, children, forks.

Tables (created with the others, `_sql._SCHEMA`): ``P_waits`` (what a free workflow waits
for, so that a message or a child's end can wake it: its row's ``due`` set to now; removed
when the supervisor submits the woken row, and when the workflow ends),
``P_messages`` (every message sent, in order; ``taken`` is the step that took it, so a step
that never committed leaves it to that step's retry) and ``P_events``. A fenced change
first updates the workflow's row ``WHERE owner = ? AND fence = ?`` in its transaction: on
PostgreSQL that also locks the row, so no new claim can slip between the check and the
change.
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any, Protocol

from ._store import Claim

if TYPE_CHECKING:

    class _Tx(Protocol):
        """What the waits use of `_sql._Tx` (not imported: `_sql` imports this module)."""

        db: Any
        stored: Any

        def __enter__(self) -> _Tx: ...
        def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None: ...


__all__ = ["WAITS_SCHEMA", "SQLWaits"]

WAITS_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS {p}_waits (wf TEXT PRIMARY KEY, what TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS {p}_messages (
    k {counter},
    wf TEXT NOT NULL,
    topic TEXT NOT NULL,
    value TEXT NOT NULL,
    taken {int}
)""",
    "CREATE INDEX IF NOT EXISTS {p}_messages_wf ON {p}_messages (wf, topic, k)",
    """CREATE TABLE IF NOT EXISTS {p}_events (
    wf TEXT NOT NULL,
    k TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (wf, k)
)""",
]

# A fenced statement's condition: the row is still claimed by this claim (`_sql` too).
FENCE = "id = ? AND owner = ? AND fence = ? AND status = 'running'"
_WAITING = "EXISTS (SELECT 1 FROM {p}_waits WHERE wf = ? AND what = ?)"

WAITS_SQL = {
    "fenced": "UPDATE {p}_workflows SET fence = fence WHERE " + FENCE,
    "suspend": "UPDATE {p}_workflows SET owner = '', due = ?, last_error = '' WHERE " + FENCE,
    "wait_for": "INSERT INTO {p}_waits (wf, what) VALUES (?, ?)"
    " ON CONFLICT (wf) DO UPDATE SET what = excluded.what",
    "due_now": "UPDATE {p}_workflows SET due = ? WHERE id = ?",
    "next_message": "SELECT k, value FROM {p}_messages WHERE wf = ? AND topic = ?"
    " AND (taken IS NULL OR taken >= ?) ORDER BY k LIMIT 1",
    "mark": "UPDATE {p}_messages SET taken = ? WHERE k = ?",
    "ended": "SELECT 1 FROM {p}_workflows WHERE id = ? AND status <> 'running'",
    # Locks the row first: on PostgreSQL a wake-up's check of P_waits, made after a
    # concurrent `suspend` that held the row, must see what that `suspend` wrote (an
    # UPDATE blocked on a row re-checks the row, not the subquery's snapshot).
    "lock": "UPDATE {p}_workflows SET fence = fence WHERE id = ?",
    "send": "INSERT INTO {p}_messages (wf, topic, value) VALUES (?, ?, ?)",
    "wake": "UPDATE {p}_workflows SET due = ? WHERE id = ? AND owner = ''"
    " AND status = 'running' AND due > ? AND " + _WAITING,
    "woken": "SELECT w.id, w.step FROM {p}_waits x JOIN {p}_workflows w ON w.id = x.wf"
    " WHERE w.status = 'running' AND w.owner = '' AND w.due <= ?",
    "unwait": "DELETE FROM {p}_waits WHERE wf = ?",
    "set_event": "INSERT INTO {p}_events (wf, k, value) VALUES (?, ?, ?)"
    " ON CONFLICT (wf, k) DO UPDATE SET value = excluded.value",
    "get_event": "SELECT value FROM {p}_events WHERE wf = ? AND k = ?",
    "history": "SELECT blob, steps FROM {p}_states WHERE wf = ? ORDER BY seq",
}


class SQLWaits:
    """Mixed into `_sql.SQLStore`: the `Store` methods of waiting."""

    _q: dict[str, str]
    _d: Any

    if TYPE_CHECKING:

        def _write(self, single: bool = False) -> _Tx: ...
        def _read(self, key: str, args: tuple[Any, ...] = ()) -> builtins.list[Any]: ...
        def load_state(self, id: str) -> bytes: ...

    def _fenced(self, tx: _Tx, claim: Claim) -> bool:
        args = (claim.id, claim.owner, claim.fence)
        return bool(tx.db.execute(self._q["fenced"], args).rowcount == 1)

    def suspend(self, claim: Claim, due: float, what: str, now: float) -> bool:
        with self._write() as tx:
            fenced = (due, claim.id, claim.owner, claim.fence)
            if tx.db.execute(self._q["suspend"], fenced).rowcount != 1:
                return False
            tx.db.execute(self._q["wait_for"], (claim.id, what))
            kind, _, arg = what.partition(":")
            # What ended the wait while this worker was deciding to wait (a wake-up then
            # found the row still held): a message, or the child's end.
            if kind == "receive":
                check = tx.db.execute(self._q["next_message"], (claim.id, arg, claim.step))
            elif kind == "join":
                check = tx.db.execute(self._q["ended"], (arg,))
            if kind in ("receive", "join") and check.fetchone() is not None:
                tx.db.execute(self._q["due_now"], (now, claim.id))
        return True

    def take(self, claim: Claim, topic: str) -> tuple[bool, str | None]:
        with self._write() as tx:
            if not self._fenced(tx, claim):
                return False, None
            args = (claim.id, topic, claim.step)
            row = tx.db.execute(self._q["next_message"], args).fetchone()
            if row is None:
                return True, None
            tx.db.execute(self._q["mark"], (claim.step, row[0]))
        return True, str(row[1])

    def send(self, id: str, topic: str, value: str, now: float) -> bool:
        with self._write() as tx:
            if tx.db.execute(self._q["lock"], (id,)).rowcount != 1:
                return False
            tx.db.execute(self._q["send"], (id, topic, value))
            tx.db.execute(self._q["wake"], (now, id, now, id, f"receive:{topic}"))
        return True

    def wake(self, id: str, what: str, now: float) -> bool:
        with self._write() as tx:
            if tx.db.execute(self._q["lock"], (id,)).rowcount != 1:
                return False
            return bool(tx.db.execute(self._q["wake"], (now, id, now, id, what)).rowcount == 1)

    def woken(self, now: float) -> builtins.list[tuple[str, int]]:
        with self._write() as tx:
            rows = tx.db.execute(self._q["woken"], (now,)).fetchall()
            for id, _ in rows:
                tx.db.execute(self._q["unwait"], (id,))
        return [(str(id), int(step)) for id, step in rows]

    def set_event(self, claim: Claim, key: str, value: str) -> bool:
        with self._write() as tx:
            if not self._fenced(tx, claim):
                return False
            tx.db.execute(self._q["set_event"], (claim.id, key, value))
        return True

    def get_event(self, id: str, key: str) -> str | None:
        rows = self._read("get_event", (id, key))
        return str(rows[0][0]) if rows else None

    def history(self, id: str) -> builtins.list[tuple[bytes, str]]:
        self.load_state(id)  # checks the chain
        return [(self._d.blob(b), str(s)) for b, s in self._read("history", (id,))]
