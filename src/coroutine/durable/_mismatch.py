"""Why a state's MAC or checksum does not match: a fork, a missing delta, or corruption.

Theory of operation. A tag checks every byte before it, so a state that fails its check
says nothing by itself of where it went wrong. To say more, `why_not` walks the frames that
still verify from the start: it finds where each frame ends by looking for where a position
starts (a search in C: a regex with a literal prefix skips every other byte), reading the
tail's "S" and length backwards from there, and checking the tag that follows. A delta that
does not name the tag before it is a fork (a state resumed twice) or a gap.

The bytes may be anyone's, and nothing of them is authenticated, so the walk must cost time
linear in them however they were chosen: it examines at most one candidate per
`_PER_CANDIDATE` bytes (each costs Python work; every frame the library writes is larger),
and gives the plain reason when they run out.
"""

from __future__ import annotations

import hmac
import re

from ._keys import TAG, hasher
from ._log import _PREV

__all__ = ["why_not"]

# How a frame's position starts: a tuple of 8 or 9 fields, or, in a sealed state, a sealed
# part. The explanation finds these with a search in C that skips other bytes (a literal
# prefix: an alternation of the two would try every byte), then reads the tail's "S" and
# length backwards: each candidate costs Python work, so their number is bounded.
_POSITION_START = re.compile(rb"t[\x08\x09]"), re.compile(rb"Z")
_U32 = [n.to_bytes(4, "big") for n in range(0x80)]
_PER_CANDIDATE = 48  # bytes of state per candidate examined (a frame takes more)


def why_not(b: bytes, keys: tuple[bytes, ...], *, sealed: bool) -> str:
    """Why no key verifies `b`: a delta that does not follow the frame before it (a fork,
    or a missing delta), else corruption, a cut, or another key.

    Walks the frames that verify, from the start. Candidate frame ends are found by a
    search in C, and at most one is examined per `_PER_CANDIDATE` bytes (every frame a
    library writes is larger), so explaining costs time linear in `b` however its bytes
    were chosen, and gives the plain reason when the candidates run out.
    """
    live = [hasher(k) for k in keys or (None,)]
    marks = _POSITION_START[sealed]
    pos = 0
    left = 64 + len(b) // _PER_CANDIDATE
    while left > 0:
        stop = None
        for found in marks.finditer(b, pos + 7):  # a frame holds 7 bytes before its position
            left -= 1
            stop = _frame_end(b, found.start())
            if stop is not None or left <= 0:
                break
        if stop is None:
            break
        tag = b[stop - TAG : stop]
        segment = memoryview(b)[pos : stop - TAG]
        for h in live:
            h.update(segment)
        live = [h for h in live if hmac.compare_digest(h.copy().digest(), tag)]
        if not live:
            break
        for h in live:
            h.update(tag)
        pos = stop
        if b[pos : pos + 1] == b"D" and b[pos + 1 : pos + 1 + _PREV] != tag[:_PREV]:
            return (
                f"the delta at offset {pos} does not follow the frame before it: it was saved "
                "after another save of this coroutine. Either deltas are missing or out of "
                "order, or the state was resumed twice (two processes restored it and saved)"
            )
    if keys:
        return "the MAC does not match: the state was tampered with, or signed with another key"
    return "the checksum does not match: the bytes are corrupt or truncated"


def _frame_end(b: bytes, start: int) -> int | None:
    """Where the frame ends (after its tag) whose position seems to start at `b[start]`,
    after its tail's "S" and length; None if the bytes say otherwise."""
    n = b[start - 1]
    if n < 0x80 and b[start - 2] == 0x53:  # the common case: a one-byte length
        stop = start + n + 4 + TAG
        return stop if b[start + n : start + n + 4] == _U32[n] and stop <= len(b) else None
    first = start - 1  # the length's first byte: its last is below 0x80, the others not
    while first > 0 and b[first - 1] >= 0x80 and start - first < 10:
        first -= 1
    if first < 1 or b[first - 1] != 0x53 or n >= 0x80:
        return None
    n = 0
    for i, byte in enumerate(b[first:start]):
        n |= (byte & 0x7F) << (7 * i)
    stop = start + n + 4 + TAG
    if n >= 1 << 32 or stop > len(b) or b[start + n : start + n + 4] != n.to_bytes(4, "big"):
        return None
    return stop
