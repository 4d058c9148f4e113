"""The Redis store: workflows shared by workers on many machines through one Redis server.

Theory of operation. Every change is one Lua script, which Redis runs atomically: no other
command runs between its reads and its writes, so the compare-and-set of `commit` (row still
``running`` at `old_step`) and the state append happen together or not at all. Keys, under
the store's prefix (``?prefix=NAME``, default ``cw``):

* ``P:wf:ID``   hash: entry, args, status, step, error, owner, lease_until, n
* ``P:st:ID``   list: the full state, then one delta per step (append-only)
* ``P:ready``   sorted set of running ids by the time their lease ends (or they were
                released): `claim` takes the lowest score that is not in the future
* ``P:upd``     sorted set of running ids by last update, for `stale`
* ``P:all``     sorted set of every id by creation order, for `list`

Durability is Redis's: run it with AOF (``appendonly yes``, ``appendfsync everysec`` or
``always``) or a committed step can be lost with the server. A single server (or a primary
with replicas) is assumed, not Redis Cluster.
"""

from __future__ import annotations

import builtins
from typing import Any

import redis  # type: ignore[import-untyped,unused-ignore]

from ._records import Row
from ._store import Claim, Commit, Store, StoreURL

__all__ = ["RedisStore"]

_CLAIM = """
local id = ARGV[1]
if id == '' then
  local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[3], 'LIMIT', 0, 1)
  if #ids == 0 then return false end
  id = ids[1]
end
local wf = ARGV[6] .. id
local f = redis.call('HMGET', wf, 'status', 'step', 'lease_until', 'owner', 'entry', 'args')
if f[1] ~= 'running' then return false end
if ARGV[1] ~= '' then
  if f[2] ~= ARGV[2] then return false end
  if tonumber(f[3]) > tonumber(ARGV[3]) and f[4] ~= ARGV[5] then return false end
end
local until_ = tostring(tonumber(ARGV[3]) + tonumber(ARGV[4]))
redis.call('HSET', wf, 'owner', ARGV[5], 'lease_until', until_)
redis.call('ZADD', KEYS[1], until_, id)
return {id, f[5], f[6], f[2]}
"""

_COMMIT = """
local f = redis.call('HMGET', KEYS[1], 'status', 'step')
if f[1] ~= 'running' or f[2] ~= ARGV[1] then return 0 end
local now = ARGV[6]
redis.call('HSET', KEYS[1], 'step', ARGV[2], 'status', ARGV[3], 'error', ARGV[4],
           'lease_until', ARGV[5])
if ARGV[8] == '1' then
  if ARGV[7] == '1' then redis.call('DEL', KEYS[2]) end
  redis.call('RPUSH', KEYS[2], ARGV[9])
end
if ARGV[3] == 'running' then
  local score = ARGV[5]
  if tonumber(score) == 0 then score = now end
  redis.call('ZADD', KEYS[3], score, ARGV[10])
  redis.call('ZADD', KEYS[4], now, ARGV[10])
else
  redis.call('ZREM', KEYS[3], ARGV[10])
  redis.call('ZREM', KEYS[4], ARGV[10])
end
return 1
"""

_CANCEL = """
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'failed', 'error', ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[2])
return 1
"""

_RENEW = """
local f = redis.call('HMGET', KEYS[1], 'status', 'step', 'owner')
if f[1] ~= 'running' or f[2] ~= ARGV[1] or f[3] ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'lease_until', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
return 1
"""

_STALE = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
local out = {}
for _, id in ipairs(ids) do
  local f = redis.call('HMGET', ARGV[3] .. id, 'lease_until', 'step')
  if tonumber(f[1]) <= tonumber(ARGV[1]) then
    redis.call('ZADD', KEYS[1], ARGV[1], id)
    table.insert(out, id)
    table.insert(out, f[2])
  end
end
return out
"""

_CREATE = """
local n = redis.call('INCR', KEYS[5])
redis.call('HSET', KEYS[1], 'entry', ARGV[1], 'args', ARGV[2], 'status', 'running',
           'step', '0', 'error', '', 'owner', '', 'lease_until', '0', 'n', n)
redis.call('DEL', KEYS[2])
redis.call('RPUSH', KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[5])
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[5])
redis.call('ZADD', KEYS[6], n, ARGV[5])
return n
"""


def _s(b: Any) -> str:
    return b.decode() if isinstance(b, bytes) else str(b)


class RedisStore(Store):
    """A store in one Redis server: ``redis://host:port/db[?prefix=NAME]``."""

    def __init__(self, url: StoreURL) -> None:
        p = url.prefix
        self.url = url.url
        self._r = redis.Redis.from_url(url.target)
        self._p = p
        self._ready, self._upd, self._all = f"{p}:ready", f"{p}:upd", f"{p}:all"
        self._claim = self._r.register_script(_CLAIM)
        self._commit = self._r.register_script(_COMMIT)
        self._cancel = self._r.register_script(_CANCEL)
        self._stale = self._r.register_script(_STALE)
        self._renew = self._r.register_script(_RENEW)
        self._create = self._r.register_script(_CREATE)

    def _wf(self, id: str) -> str:
        return f"{self._p}:wf:{id}"

    def _st(self, id: str) -> str:
        return f"{self._p}:st:{id}"

    def create(self, row: Row, state: bytes, now: float) -> None:
        keys = [self._wf(row.id), self._st(row.id), self._ready, self._upd, f"{self._p}:n"]
        self._create([*keys, self._all], [row.entry, row.args, state, repr(now), row.id])

    def claim(
        self, worker: str, now: float, lease: float, id: str | None = None, step: int = -1
    ) -> Claim | None:
        args = [id or "", str(step), repr(now), repr(lease), worker, f"{self._p}:wf:"]
        got = self._claim([self._ready], args)
        if not got:
            return None
        return Claim(_s(got[0]), _s(got[1]), _s(got[2]), int(got[3]))

    def commit(self, c: Commit, now: float) -> bool:
        keys = [self._wf(c.id), self._st(c.id), self._ready, self._upd]
        args = [
            str(c.old_step),
            str(c.new_step),
            c.status,
            c.error,
            repr(c.lease_until),
            repr(now),
            "1" if c.full else "0",
            "0" if c.state is None else "1",
            c.state or b"",
            c.id,
        ]
        return bool(self._commit(keys, args))

    def load_state(self, id: str) -> bytes:
        blobs: builtins.list[Any] = self._r.lrange(self._st(id), 0, -1)
        return b"".join(blobs)

    def get(self, id: str) -> Row | None:
        f = self._r.hmget(self._wf(id), "entry", "args", "status", "step", "error")
        if f[0] is None:
            return None
        return Row(id, _s(f[0]), _s(f[1]), _s(f[2]), int(f[3]), _s(f[4]))  # type: ignore[arg-type]

    def cancel(self, id: str, error: str, now: float) -> bool:
        return bool(self._cancel([self._wf(id), self._ready, self._upd], [error, id]))

    def list(self) -> builtins.list[Row]:
        ids = [_s(i) for i in self._r.zrange(self._all, 0, -1)]
        rows = (self.get(i) for i in ids)
        return [r for r in rows if r is not None]

    def stale(self, now: float, older_than: float) -> builtins.list[tuple[str, int]]:
        got = self._stale([self._upd], [repr(now), repr(now - older_than), f"{self._p}:wf:"])
        return [(_s(got[i]), int(got[i + 1])) for i in range(0, len(got), 2)]

    def renew(self, id: str, step: int, worker: str, lease_until: float) -> bool:
        keys = [self._wf(id), self._ready]
        return bool(self._renew(keys, [str(step), worker, repr(lease_until), id]))

    def count_running(self) -> int:
        return int(self._r.zcard(self._upd))

    def close(self) -> None:
        self._r.close()
