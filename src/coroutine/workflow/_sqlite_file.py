"""What a SQLite store keeps beside its file: the commit mark that exposes damage, and the
lock files that tell a live worker from a dead one.

Theory of operation. SQLite cannot tell every kind of damage from an older, valid database:
garbage in the middle of the write-ahead log makes its recovery stop there and silently drop
every later commit, and a deleted file is simply a new, empty store to the next process. So
the store counts its commits: every state it stores (a start, a step) gets a row key one more
than the largest (states are never deleted, so a key is never reused), and each process writes
the key it committed into ``FILE-coroutine/P.seq`` right after the commit. The mark may lag
behind the file (two processes writing in either order), never run ahead of it, so a file
that holds fewer commits than the mark read before counting (or under the write lock, where
no commit can come in between) has lost some: `StoreDamagedError`, on open and at
every change (against the mark as this process last read it, every `CHECK_EVERY` seconds,
or wrote it). With that: an integrity check
(``PRAGMA quick_check``) on open, and a check, at most every `CHECK_EVERY` seconds, that the
path still names the file that was opened.

Liveness: a worker process holds an exclusive ``flock`` on its own file,
``FILE-coroutine/P.OWNER.lock``, for as long as it lives; the operating system drops it with
the process, however it ends. A claimer that can take that lock knows the worker is gone.
(``flock``, not ``fcntl`` locks: those belong to the process and vanish when any of its
descriptors of the file closes.) One machine only, as SQLite itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import sqlite3
import time

from ._errors import StoreDamagedError

__all__ = ["CHECK_EVERY", "SQLiteFile"]

CHECK_EVERY = 0.25  # seconds between checks that the path still names the opened file
_RESTORE = "restore the file from a backup, or move {path} and {dir} away to start an empty store"


class SQLiteFile:
    """The guard directory of one SQLite store (its path, its table prefix)."""

    def __init__(self, path: str, prefix: str) -> None:
        self.path = os.path.abspath(path)
        self.dir = f"{self.path}-coroutine"
        self.prefix = prefix
        self._ident: tuple[int, int] | None = None  # (st_dev, st_ino) of the opened file
        self._next_check = 0.0  # monotonic time of the next path check
        self._lock_fd: int | None = None  # our own lock file, while joined
        self._known = 0  # the largest count the file is known to have held (mark or ours)
        self._held: dict[str, int] = {}  # lock fds of dead workers, until forgotten
        mark = self._mark_path()
        present = os.path.exists(self.path) and os.path.getsize(self.path) > 0
        if not present and os.path.exists(mark):
            with open(mark, "rb") as f:
                seq = int.from_bytes(f.read(8) or b"\0", "big")
            if seq:
                raise StoreDamagedError(
                    f"the SQLite store {self.path} is missing or empty, but {mark} records "
                    f"{seq} commits made to it; " + self._restore()
                )
        with contextlib.suppress(FileExistsError):
            os.mkdir(self.dir)
        self._mark = os.open(mark, os.O_RDWR | os.O_CREAT, 0o644)

    def _mark_path(self) -> str:
        return os.path.join(self.dir, f"{self.prefix}.seq")

    def _restore(self) -> str:
        return _RESTORE.format(path=self.path, dir=self.dir)

    def mark(self) -> int:
        """The commit count last written beside the file."""
        return int.from_bytes(os.pread(self._mark, 8, 0) or b"\0", "big")

    def opened(self, db: sqlite3.Connection, count_sql: str) -> None:
        """Check a freshly opened store: integrity, and no fewer commits than its mark."""
        try:
            problems = [r[0] for r in db.execute("PRAGMA quick_check").fetchall()]
        except sqlite3.OperationalError:  # locked, busy: not damage
            raise
        except sqlite3.DatabaseError as exc:  # so damaged the check itself cannot read it
            problems = [str(exc)]
        if problems != ["ok"]:
            raise StoreDamagedError(
                f"the SQLite store {self.path} fails its integrity check ({problems[0]}); "
                + self._restore()
            )
        # The mark first: read after the count, it may hold a commit made in between.
        self._known = max(self._known, self.mark())
        self._check_count((db.execute(count_sql).fetchone() or (0,))[0], reread=False)
        st = os.stat(self.path)
        self._ident = (st.st_dev, st.st_ino)

    def _check_count(self, seq: int, reread: bool = True) -> None:
        """Raise if `seq`, the file's count, is below the mark. Reread the mark only where no
        commit can come between the count and the mark (inside a write transaction)."""
        if reread:
            self._known = max(self._known, self.mark())
        mark = self._known
        if seq < mark:
            raise StoreDamagedError(
                f"the SQLite store {self.path} holds {seq} commits, but its workers recorded "
                f"{mark} in {self._mark_path()}: commits were lost (damage to its -wal file, "
                "or an older copy of the file); " + self._restore()
            )

    def check(self) -> None:
        """Raise if the path no longer names the opened file (checked every CHECK_EVERY s)."""
        now = time.monotonic()
        if now < self._next_check:
            return
        self._next_check = now + CHECK_EVERY
        self._known = max(self._known, self.mark())  # other processes' commits
        try:
            st = os.stat(self.path)
            same = (st.st_dev, st.st_ino) == self._ident
        except FileNotFoundError:
            same = False
        if not same:
            raise StoreDamagedError(
                f"the SQLite store {self.path} was deleted or replaced while this process had "
                "it open; what was committed since is in the old file only. " + self._restore()
            )

    def counted(self, seq: int) -> int:
        """Inside the transaction that stored state number `seq` (its row's key, one more
        than the largest before, and never reused: states are never deleted): raise if the
        file has lost states this process knew it held (the mark is read every
        CHECK_EVERY s)."""
        if seq - 1 < self._known:
            self._check_count(seq - 1)
        return seq

    def written(self, seq: int) -> None:
        """Record, after the commit, that the file holds `seq` commits."""
        os.pwrite(self._mark, seq.to_bytes(8, "big"), 0)
        if seq > self._known:
            self._known = seq

    # -- liveness ---------------------------------------------------------------------------

    def _lock_path(self, owner: str) -> str:
        name = re.sub(r"[^\w.-]", "_", owner)
        return os.path.join(self.dir, f"{self.prefix}.{name}.lock")

    def lock(self, owner: str) -> None:
        """Hold this process's lock file, for as long as it lives (or until `unlock`)."""
        fd = os.open(self._lock_path(owner), os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # new and ours: never contended
        self._lock_fd = fd

    def dead(self, owners: list[str]) -> list[str]:
        """The owners whose process is gone (their lock file is free, or missing)."""
        gone = []
        for owner in owners:
            try:
                fd = os.open(self._lock_path(owner), os.O_RDWR)
            except FileNotFoundError:
                gone.append(owner)
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)  # alive: its process holds the lock
                continue
            self._held[owner] = fd  # dead; kept locked until `forget`
            gone.append(owner)
        return gone

    def forget(self, owner: str) -> None:
        """Remove a dead worker's lock file (after its claims were freed)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._lock_path(owner))
        fd = self._held.pop(owner, None)
        if fd is not None:
            os.close(fd)

    def close(self, owner: str) -> None:
        """Give up the lock of `owner` (if joined; the store is closing) and the mark."""
        if self._lock_fd is not None and owner:
            self.forget(owner)
            os.close(self._lock_fd)
            self._lock_fd = None
        for o in list(self._held):
            self.forget(o)
        if self._mark >= 0:
            os.close(self._mark)
            self._mark = -1
