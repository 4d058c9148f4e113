"""How values and strings from a durable state are shown in messages: bounded and escaped.

A state may be anyone's, so what it holds is shown at a cost that does not grow with it
(`short`: a few items, a few levels, 80 characters), and its strings without a character that
a terminal or a log would act on (`shown`).
"""

from __future__ import annotations

import itertools
import reprlib
from typing import Any

__all__ = ["short", "shown"]


class _Short(reprlib.Repr):
    """A ``repr`` whose cost is bounded whatever the value (a decoded one may be huge): a few
    items per container, a few levels, strings and bytes cut, big ints summarized."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 4
        self.maxtuple = self.maxlist = self.maxdict = self.maxset = self.maxfrozenset = 8
        self.maxstring = self.maxother = 80

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 256:  # and over 4,300 digits, an int has no repr
            return f"<an int of {x.bit_length()} bits>"
        return repr(x)

    def repr_bytes(self, x: bytes, level: int) -> str:
        return repr(x[:80]) + ("..." if len(x) > 80 else "")

    # Sets and dicts in their own order: reprlib sorts them whole first.
    def repr_set(self, x: set[Any], level: int) -> str:
        return self._items(x, "{", "}", level) if x else "set()"

    def repr_frozenset(self, x: frozenset[Any], level: int) -> str:
        return self._items(x, "frozenset({", "})", level) if x else "frozenset()"

    def repr_dict(self, x: dict[Any, Any], level: int) -> str:
        if not x:
            return "{}"
        if level <= 0:
            return "{...}"
        shown = [
            f"{self.repr1(k, level - 1)}: {self.repr1(x[k], level - 1)}"
            for k in itertools.islice(x, self.maxdict)
        ]
        return "{" + ", ".join(shown) + (", ..." if len(x) > self.maxdict else "") + "}"

    def _items(self, x: Any, left: str, right: str, level: int) -> str:
        if level <= 0:
            return left + "..." + right
        shown = [self.repr1(item, level - 1) for item in itertools.islice(x, self.maxset)]
        return left + ", ".join(shown) + (", ..." if len(x) > self.maxset else "") + right


_SHORT = _Short()


def short(v: object) -> str:
    """`repr(v)` cut to 80 characters, at a cost that does not grow with `v`; never raises."""
    try:
        text = _SHORT.repr(v)
    except Exception:
        text = f"<{type(v).__qualname__} object>"
    return text if len(text) <= 80 else text[:77] + "..."


def shown(text: str, limit: int | None = 200) -> str:
    """Untrusted `text` as it may be printed: every character that is not printable (terminal
    controls, line breaks, bidirectional overrides) escaped as in a ``repr``, and cut to
    `limit` characters."""
    if limit is not None and len(text) > limit:
        text = text[:limit]
        cut = True
    else:
        cut = False
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
    if limit is not None and (cut or len(text) > limit):
        text = text[: limit - 3] + "..."
    return text
