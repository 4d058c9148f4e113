"""The Redis store: workflows shared by workers on many machines through one Redis server.

Theory of operation (the contract is `_store`'s). Every change is one Lua script, which Redis
runs atomically: no other command runs between its reads and its writes, so a fenced change
(its claim's owner and fence still the row's) and the state appended with it happen together
or not at all. Keys, under the store's prefix (``?prefix=NAME``, default ``cw``):

* ``P:wf:ID``       hash: entry, args, status, step, error, owner, fence, due, created,
                    updated, last_error, chain, n
* ``P:st:ID``       list: the full state, then one delta per commit (append-only)
* ``P:sp:ID``       list: the activity calls of each commit, for `Engine.steps`
* ``P:ready``       sorted set of running ids by ``due``: `claim` takes the lowest score not in
                    the future (O(log n) however many are queued)
* ``P:all``         sorted set of every id by creation order, for `list`
* ``P:workers``     hash of the worker processes that joined; ``P:alive:OWNER`` a key each
                    keeps alive (``PRESENCE`` seconds, refreshed by its heartbeat every
                    ``alive_every``); ``P:held:OWNER`` the ids it has claimed. A worker whose
                    key lapsed is gone (or stopped): `reap` frees its claims.

Durability is Redis's: run it with AOF (``appendonly yes``, ``appendfsync everysec`` or
``always``) or a committed step can be lost with the server. A single server (or a primary
with replicas) is assumed, not Redis Cluster.
"""

from __future__ import annotations

import builtins
import time
from typing import Any

import redis  # type: ignore[import-untyped,unused-ignore]

from . import _queues, _schedule
from ._errors import StoreDamagedError
from ._records import Row
from ._redis_waits import FENCED as _FENCED
from ._redis_waits import RedisWaits
from ._store import Claim, Commit, Store, StoreURL, chain

__all__ = ["PRESENCE", "RedisStore"]

PRESENCE = 1.0  # seconds a worker's alive key outlives its last refresh

_FIELDS = ("entry", "args", "status", "step", "error", "created", "updated", "last_error",
           "owner", "queue", "deadline")  # fmt: skip

_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local n = redis.call('INCR', KEYS[4])
redis.call('HSET', KEYS[1], 'entry', ARGV[2], 'args', ARGV[3], 'status', 'running',
  'step', ARGV[9], 'error', '', 'owner', '', 'fence', '0', 'due', ARGV[5], 'created', ARGV[5],
  'updated', ARGV[5], 'last_error', '', 'chain', ARGV[6], 'n', n, 'queue', ARGV[7],
  'deadline', ARGV[8])
redis.call('DEL', KEYS[2], KEYS[6])
redis.call('RPUSH', KEYS[2], ARGV[4])
if ARGV[10] ~= '' then  -- a fork: its first state's steps (`_redis_waits.history`)
  redis.call('HSET', KEYS[1], 'forked', '1')
  redis.call('RPUSH', KEYS[6], ARGV[10])
end
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[1])
redis.call('ZADD', KEYS[5], n, ARGV[1])
return 1
"""

_DISCARD = """
local f = redis.call('HMGET', KEYS[1], 'status', 'step', 'owner')
if f[1] ~= 'running' or f[2] ~= '0' or f[3] ~= '' then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
return 1
"""

_CLAIM = (
    _queues.REDIS_PARKING
    + _queues.REDIS_FREE_SLOT
    + """
local function claimable(id)
  local g = redis.call('HMGET', ARGV[6] .. id, 'queue', 'owner', 'deadline')
  return free_slot(g[1] or '', g[2] or '', tonumber(g[3] or '0')), g
end
local id = ARGV[1]
if id == '' then
  unpark(KEYS[1], KEYS[2], ARGV[6], ARGV[8], ARGV[9])
  local off = 0
  while id == '' do  -- the first ready row not waiting for a queue slot (`_queues`)
    local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[3], 'WITHSCORES', 'LIMIT',
                           off, 100)
    if #ids == 0 then return false end
    local parked = 0
    for i = 1, #ids, 2 do
      local c = ids[i]
      local ok, g = claimable(c)
      if ok then id = c break end
      if g[2] == '' and tonumber(g[3] or '0') == 0 then  -- free, no time limit: park it
        local due = tonumber(ids[i + 1])
        redis.call('HSET', ARGV[6] .. c, 'due', due + PARK)
        redis.call('ZADD', KEYS[1], due + PARK, c)
        redis.call('ZADD', ARGV[9] .. g[1], due, c)
        parked = parked + 1
      end
    end
    off = off + #ids / 2 - parked  -- (parked rows left the range: the next page is nearer)
  end
elseif not claimable(id) then return false end
local wf = ARGV[6] .. id
local f = redis.call('HMGET', wf, 'status', 'step', 'due', 'entry', 'args', 'fence', 'chain',
                     'owner', 'queue', 'deadline')
if f[1] ~= 'running' then return false end
if ARGV[1] ~= '' and (f[2] ~= ARGV[2] or tonumber(f[3]) > tonumber(ARGV[3])) then
  return false
end
local fence = tostring(tonumber(f[6]) + 1)
redis.call('HSET', wf, 'owner', ARGV[5], 'fence', fence, 'due', ARGV[4])
redis.call('ZADD', KEYS[1], ARGV[4], id)
if f[8] ~= '' then redis.call('SREM', ARGV[7] .. f[8], id) end
redis.call('SADD', ARGV[7] .. ARGV[5], id)
if f[9] and f[9] ~= '' then redis.call('SADD', ARGV[8] .. f[9], id) end
return {id, f[4], f[5], f[2], fence, f[7], f[9] or '', f[10] or '0'}
"""
)


_COMMIT = (
    _FENCED
    + """
redis.call('HSET', KEYS[1], 'step', ARGV[3], 'status', ARGV[4], 'error', ARGV[5],
  'owner', ARGV[6], 'due', ARGV[7], 'updated', ARGV[8], 'chain', ARGV[9], 'last_error', '')
if ARGV[10] == '1' then
  redis.call('RPUSH', KEYS[2], ARGV[11])
  if ARGV[12] ~= '' then redis.call('RPUSH', KEYS[3], ARGV[12]) end
end
if ARGV[4] == 'running' then redis.call('ZADD', KEYS[4], ARGV[7], ARGV[13])
else
  redis.call('ZREM', KEYS[4], ARGV[13])
  redis.call('SREM', KEYS[6], ARGV[13])  -- what it waited for (`_redis_waits`)
end
if ARGV[6] == '' then redis.call('SREM', KEYS[5], ARGV[13]) end
return 1
"""
)

_COMMIT_KEEP = (  # a step of a batch: the claim goes on
    _FENCED
    + """
redis.call('HSET', KEYS[1], 'step', ARGV[3], 'due', ARGV[4], 'updated', ARGV[5],
  'chain', ARGV[6], 'last_error', '')
redis.call('RPUSH', KEYS[2], ARGV[7])
if ARGV[8] ~= '' then redis.call('RPUSH', KEYS[3], ARGV[8]) end
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[9])
return 1
"""
)

_RENEW = (
    _FENCED
    + """
redis.call('HSET', KEYS[1], 'due', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
return 1
"""
)

_RELEASE = (
    _FENCED
    + """
redis.call('HSET', KEYS[1], 'owner', '', 'due', ARGV[3], 'last_error', ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[5])
redis.call('SREM', KEYS[3], ARGV[5])
return 1
"""
)

_CANCEL = """
local f = redis.call('HMGET', KEYS[1], 'status', 'owner')
if f[1] ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'failed', 'error', ARGV[1], 'owner', '',
  'updated', ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[3])
redis.call('SREM', KEYS[3], ARGV[3])
if f[2] ~= '' then redis.call('SREM', ARGV[4] .. f[2], ARGV[3]) end
return 1
"""

_STALE = (
    _queues.REDIS_PARKING
    + """
-- Rows parked by plain workers' claims come back here too (Celery's claims are by id: they
-- park nothing, and a parked row's message would be dropped).
unpark(KEYS[1], KEYS[2], ARGV[3], ARGV[5], ARGV[6])
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 500)
local out = {}
for _, id in ipairs(ids) do
  local wf = ARGV[3] .. id
  local f = redis.call('HMGET', wf, 'owner', 'due', 'step', 'last_error')
  if f[1] ~= '' or tonumber(f[2]) <= tonumber(ARGV[2]) then
    if f[1] ~= '' then redis.call('SREM', ARGV[4] .. f[1], id) end
    redis.call('HSET', wf, 'owner', '', 'due', ARGV[1])
    redis.call('ZADD', KEYS[1], ARGV[1], id)
    table.insert(out, id)
    table.insert(out, f[3])
    table.insert(out, f[4])
  end
end
return out
"""
)

_ALIVE = """
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
"""

_FREE = """
local freed = 0
for _, id in ipairs(redis.call('SMEMBERS', ARGV[2] .. ARGV[1])) do
  local wf = ARGV[3] .. id
  if redis.call('HGET', wf, 'owner') == ARGV[1] then
    redis.call('HSET', wf, 'owner', '', 'due', '0')
    redis.call('ZADD', KEYS[2], 0, id)
    freed = freed + 1
  end
end
redis.call('DEL', ARGV[2] .. ARGV[1])
redis.call('HDEL', KEYS[1], ARGV[1])
"""

_REAP = (
    """
local freed = 0
for _, w in ipairs(redis.call('HKEYS', KEYS[1])) do
  if w ~= ARGV[4] and redis.call('EXISTS', ARGV[5] .. w) == 0 then
    ARGV[1] = w
"""
    + _FREE.replace("local freed = 0\n", "")
    + """
  end
end
return freed
"""
)

_LEAVE = (
    _FREE
    + """
redis.call('DEL', ARGV[4])
return freed
"""
)


def _s(b: Any) -> str:
    return b.decode() if isinstance(b, bytes) else str(b)


class RedisStore(RedisWaits, _queues.QueueRedis, _schedule.ScheduleRedis, Store):
    """A store in one Redis server: ``redis://host:port/db[?prefix=NAME]``."""

    alive_every = PRESENCE / 5

    def __init__(self, url: StoreURL) -> None:
        p = url.prefix
        self.url = url.url
        self._r = redis.Redis.from_url(url.target)
        self._p = p
        self._ready, self._all, self._workers = f"{p}:ready", f"{p}:all", f"{p}:workers"
        self._owner = ""
        reg = self._r.register_script
        self._create, self._discard, self._claim = reg(_CREATE), reg(_DISCARD), reg(_CLAIM)
        self._commit, self._renew, self._release = reg(_COMMIT), reg(_RENEW), reg(_RELEASE)
        self._commit_keep = reg(_COMMIT_KEEP)
        self._cancel, self._stale, self._alive = reg(_CANCEL), reg(_STALE), reg(_ALIVE)
        self._reap, self._leave = reg(_REAP), reg(_LEAVE)

    def _k(self, kind: str, id: str) -> str:
        return f"{self._p}:{kind}:{id}"

    def create(self, row: Row, state: bytes, now: float, steps: str | None = None) -> Row | None:
        keys = [self._k("wf", row.id), self._k("st", row.id), self._ready, f"{self._p}:n",
                self._all, self._k("sp", row.id)]  # fmt: skip
        forked = "" if steps is None else steps or "\n"  # (an empty list entry is none)
        args: builtins.list[Any] = [row.id, row.entry, row.args, state, repr(now),
                                    chain(b"", state), row.queue, repr(row.deadline),
                                    str(row.step), forked]  # fmt: skip
        if self._create(keys, args):
            return None
        return self.get(row.id)

    def discard(self, id: str) -> bool:
        keys = [self._k("wf", id), self._k("st", id), self._k("sp", id), self._ready, self._all]
        return bool(self._discard(keys, [id]))

    def claim(
        self, owner: str, now: float, lease: float, id: str | None = None, step: int = -1
    ) -> Claim | None:
        args = [id or "", str(step), repr(now), repr(now + lease), owner, f"{self._p}:wf:"]
        queues = [f"{self._p}:queues", f"{self._p}:qheld:", f"{self._p}:qpark:"]  # `_queues`
        got = self._claim([self._ready, queues[0]], [*args, f"{self._p}:held:", *queues[1:]])
        if not got:
            return None
        return Claim(_s(got[0]), _s(got[1]), _s(got[2]), int(got[3]), owner, int(got[4]),
                     bytes(got[5]), _s(got[6]), float(got[7]))  # fmt: skip

    def commit(self, c: Commit, now: float) -> bool:
        k = c.claim
        keys = [self._k("wf", k.id), self._k("st", k.id), self._k("sp", k.id), self._ready]
        if c.keep_until > 0 and c.status == "running" and c.state is not None:
            args: builtins.list[Any] = [k.owner, str(k.fence), str(c.step), repr(c.keep_until),
                                        repr(now), c.chain, c.state, c.steps, k.id]  # fmt: skip
            return bool(self._commit_keep(keys, args))
        args = [k.owner, str(k.fence), str(c.step), c.status, c.error, "", repr(now), repr(now),
                c.chain, "0" if c.state is None else "1", c.state or b"", c.steps,
                k.id]  # fmt: skip
        keys += [self._k("held", k.owner), f"{self._p}:waiting"]
        return bool(self._commit(keys, args))

    def renew(self, claim: Claim, until: float) -> bool:
        args = [claim.owner, str(claim.fence), repr(until), claim.id]
        return bool(self._renew([self._k("wf", claim.id), self._ready], args))

    def release(self, claim: Claim, due: float, last_error: str) -> bool:
        keys = [self._k("wf", claim.id), self._ready, self._k("held", claim.owner)]
        args = [claim.owner, str(claim.fence), repr(due), last_error, claim.id]
        return bool(self._release(keys, args))

    def load_state(self, id: str) -> bytes:
        pipe = self._r.pipeline(transaction=True)  # one snapshot of the row and its states
        pipe.hget(self._k("wf", id), "chain")
        pipe.lrange(self._k("st", id), 0, -1)
        kept, blobs = pipe.execute()
        sum = b""
        for b in blobs:
            sum = chain(sum, b)
        if sum != (kept or b""):
            raise StoreDamagedError(
                f"the stored states of workflow {id!r} do not match their checksum "
                f"({len(blobs)} states): the store was damaged or edited"
            )
        return b"".join(blobs)

    def steps(self, id: str) -> builtins.list[str]:
        return [_s(s) for s in self._r.lrange(self._k("sp", id), 0, -1)]

    def _row(self, id: str, f: builtins.list[Any]) -> Row:
        s = [_s(x) if x is not None else "" for x in f]
        return Row(id, s[0], s[1], s[2], int(s[3]), s[4], float(s[5]), float(s[6]), s[7],  # type: ignore[arg-type]
                   s[8], s[9], float(s[10] or 0))  # fmt: skip

    def get(self, id: str) -> Row | None:
        f = self._r.hmget(self._k("wf", id), *_FIELDS)
        return None if f[0] is None else self._row(id, f)

    def cancel(self, id: str, error: str, now: float) -> bool:
        args = [error, repr(now), id, f"{self._p}:held:"]
        return bool(self._cancel([self._k("wf", id), self._ready, f"{self._p}:waiting"], args))

    def list(self) -> builtins.list[Row]:
        ids = [_s(i) for i in self._r.zrange(self._all, 0, -1)]
        pipe = self._r.pipeline(transaction=False)
        for i in ids:
            pipe.hmget(self._k("wf", i), *_FIELDS)
        return [
            self._row(i, f) for i, f in zip(ids, pipe.execute(), strict=True) if f[0] is not None
        ]

    def stale(self, now: float, older_than: float) -> builtins.list[tuple[str, int, str]]:
        args = [repr(now), repr(now - older_than), f"{self._p}:wf:", f"{self._p}:held:",
                f"{self._p}:qheld:", f"{self._p}:qpark:"]  # fmt: skip
        got = self._stale([self._ready, f"{self._p}:queues"], args)
        return [(_s(got[i]), int(got[i + 1]), _s(got[i + 2])) for i in range(0, len(got), 3)]

    def count_running(self) -> int:
        return int(self._r.zcard(self._ready))

    def join(self, owner: str) -> None:
        self._owner = owner
        self.keep_alive()

    def keep_alive(self) -> None:
        if self._owner:
            keys = [self._k("alive", self._owner), self._workers]
            self._alive(keys, [int(PRESENCE * 1000), self._owner, repr(time.time())])

    def _free_args(self, owner: str) -> builtins.list[str]:
        return [owner, f"{self._p}:held:", f"{self._p}:wf:"]

    def reap(self, now: float) -> int:
        args = ["", f"{self._p}:held:", f"{self._p}:wf:", self._owner, f"{self._p}:alive:"]
        return int(self._reap([self._workers, self._ready], args))

    def close(self) -> None:
        if self._owner:
            keys = [self._workers, self._ready]
            self._leave(keys, [*self._free_args(self._owner), self._k("alive", self._owner)])
            self._owner = ""
        self._r.close()
