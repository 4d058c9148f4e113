"""The Redis store's part of waiting (`_waits`): timers, messages, events, children, forks.

Keys, beside `_redis`'s (``P`` is the prefix, ``N:ID`` the id's length and the id, so that
no id and topic pair names another's key):

* field ``waiting`` of ``P:wf:ID``, and the set ``P:waiting`` of the ids that have one: what
  a free workflow waits for, so a message or a child's end wakes it (the id removed from the
  set when the supervisor submits the woken row, and when the workflow ends);
* ``P:mq:N:ID:TOPIC`` list: the messages sent on a topic, in order; ``P:mt:N:ID:TOPIC``
  hash: the step that took each (by index), and ``floor``, the first index not taken by a
  committed step (a step that never committed leaves its message to that step's retry);
* ``P:ev:ID`` hash: the events.

Every change is one Lua script; a fenced one checks the claim first, as `_redis` does.
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any

from ._store import Claim

__all__ = ["RedisWaits"]

# A fenced script's first lines: the row is still claimed by this claim (`_redis` too).
FENCED = """
local f = redis.call('HMGET', KEYS[1], 'status', 'owner', 'fence')
if f[1] ~= 'running' or f[2] ~= ARGV[1] or f[3] ~= ARGV[2] then return 0 end
"""

# The first message index not taken by a step before ARGV[3], from KEYS[3]'s floor.
_FIRST = """
local i = tonumber(redis.call('HGET', KEYS[3], 'floor') or '0')
while true do
  local m = redis.call('HGET', KEYS[3], tostring(i))
  if m and tonumber(m) < tonumber(ARGV[3]) then i = i + 1 else break end
end
redis.call('HSET', KEYS[3], 'floor', tostring(i))
"""

_SUSPEND = (
    FENCED
    + """
local due = ARGV[4]
if ARGV[6] == '1' then
"""
    + _FIRST
    + """
  if redis.call('LLEN', KEYS[2]) > i then due = ARGV[7] end
elseif ARGV[6] == '2' then
  local st = redis.call('HGET', KEYS[7], 'status')
  if st and st ~= 'running' then due = ARGV[7] end
end
redis.call('HSET', KEYS[1], 'owner', '', 'due', due, 'last_error', '', 'waiting', ARGV[5])
redis.call('ZADD', KEYS[4], due, ARGV[8])
redis.call('SREM', KEYS[5], ARGV[8])
redis.call('SADD', KEYS[6], ARGV[8])
return 1
"""
)

_TAKE = (
    FENCED
    + _FIRST
    + """
local v = redis.call('LINDEX', KEYS[2], i)
if not v then return {1} end
redis.call('HSET', KEYS[3], tostring(i), ARGV[3])
return {1, v}
"""
)

_WAKE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[3] ~= '' then redis.call('RPUSH', KEYS[2], ARGV[3]) end
local f = redis.call('HMGET', KEYS[1], 'status', 'owner', 'due', 'waiting')
if f[1] == 'running' and f[2] == '' and tonumber(f[3]) > tonumber(ARGV[1])
    and f[4] == ARGV[2] then
  redis.call('HSET', KEYS[1], 'due', ARGV[1])
  redis.call('ZADD', KEYS[3], ARGV[1], ARGV[4])
end
return 1
"""

_WOKEN = """
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local wf = ARGV[2] .. id
  local f = redis.call('HMGET', wf, 'status', 'owner', 'due', 'step')
  if f[1] ~= 'running' then
    redis.call('SREM', KEYS[1], id)
  elseif f[2] == '' and tonumber(f[3]) <= tonumber(ARGV[1]) then
    redis.call('SREM', KEYS[1], id)
    redis.call('HSET', wf, 'waiting', '')
    table.insert(out, id)
    table.insert(out, f[4])
  end
end
return out
"""

_SET_EVENT = (
    FENCED
    + """
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
return 1
"""
)


def _s(b: Any) -> str:
    return b.decode() if isinstance(b, bytes) else str(b)


class RedisWaits:
    """Mixed into `_redis.RedisStore`: the `Store` methods of waiting."""

    _r: Any
    _p: str
    _ready: str
    _all: str

    if TYPE_CHECKING:

        def _k(self, kind: str, id: str) -> str: ...
        def load_state(self, id: str) -> bytes: ...

    def _script(self, name: str, text: str) -> Any:
        script = self.__dict__.get(name)
        if script is None:
            script = self.__dict__[name] = self._r.register_script(text)
        return script

    def _mq(self, id: str, topic: str) -> tuple[str, str]:
        tail = f"{len(id)}:{id}:{topic}"
        return f"{self._p}:mq:{tail}", f"{self._p}:mt:{tail}"

    def suspend(self, claim: Claim, due: float, what: str, now: float) -> bool:
        kind, _, arg = what.partition(":")
        mq, mt = self._mq(claim.id, arg)
        keys = [self._k("wf", claim.id), mq, mt, self._ready, self._k("held", claim.owner),
                f"{self._p}:waiting", self._k("wf", arg)]  # fmt: skip
        check = {"receive": "1", "join": "2"}.get(kind, "0")  # what may have ended the wait
        args = [claim.owner, str(claim.fence), str(claim.step), repr(due), what, check,
                repr(now), claim.id]  # fmt: skip
        return bool(self._script("_w_suspend", _SUSPEND)(keys, args))

    def take(self, claim: Claim, topic: str) -> tuple[bool, str | None]:
        mq, mt = self._mq(claim.id, topic)
        args = [claim.owner, str(claim.fence), str(claim.step)]
        got = self._script("_w_take", _TAKE)([self._k("wf", claim.id), mq, mt], args)
        if not got:
            return False, None
        return True, (_s(got[1]) if len(got) > 1 else None)

    def _wake(self, id: str, what: str, now: float, message: str, topic: str) -> bool:
        keys = [self._k("wf", id), self._mq(id, topic)[0], self._ready]
        return bool(self._script("_w_wake", _WAKE)(keys, [repr(now), what, message, id]))

    def send(self, id: str, topic: str, value: str, now: float) -> bool:
        return self._wake(id, f"receive:{topic}", now, value, topic)

    def wake(self, id: str, what: str, now: float) -> bool:
        return self._wake(id, what, now, "", "")

    def woken(self, now: float) -> builtins.list[tuple[str, int]]:
        args = [repr(now), f"{self._p}:wf:"]
        got = self._script("_w_woken", _WOKEN)([f"{self._p}:waiting"], args)
        return [(_s(got[i]), int(got[i + 1])) for i in range(0, len(got), 2)]

    def set_event(self, claim: Claim, key: str, value: str) -> bool:
        keys = [self._k("wf", claim.id), self._k("ev", claim.id)]
        args = [claim.owner, str(claim.fence), key, value]
        return bool(self._script("_w_event", _SET_EVENT)(keys, args))

    def get_event(self, id: str, key: str) -> str | None:
        value = self._r.hget(self._k("ev", id), key)
        return None if value is None else _s(value)

    def history(self, id: str) -> builtins.list[tuple[bytes, str]]:
        self.load_state(id)  # checks the chain
        states = [bytes(b) for b in self._r.lrange(self._k("st", id), 0, -1)]
        # The steps list has one entry per commit that answered calls: every commit but
        # possibly the last (a body that returned without a call), so they align from the
        # first delta; a fork's first state has its own (its steps so far).
        steps = [_s(s) for s in self._r.lrange(self._k("sp", id), 0, -1)]
        if self._r.hget(self._k("wf", id), "forked") is None:
            steps.insert(0, "")
        steps += [""] * (len(states) - len(steps))
        return list(zip(states, steps, strict=True))
