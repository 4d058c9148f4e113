"""A coroutine's or a yield site's pair of types `[R, S]`, and the rule joining the two.

A `Signature` is interned per hashable `(R, S)` pair, so the common case (a yield site
declared with the coroutine's own types) is an identity test, and the compatibility of two
different signatures is decided once and cached on the yield site's signature.
"""

from __future__ import annotations

import os
import threading
from typing import Any, NamedTuple

from . import _typecheck as tc
from ._errors import YieldTypeError, user_site

__all__ = ["TYPECHECK", "Rule", "Signature", "bad_value", "signature", "type_params"]

TYPECHECK: bool = os.environ.get("COROUTINE_TYPECHECK", "1") != "0"
"""False iff COROUTINE_TYPECHECK=0 was set at import: value checks off, pair checks kept."""


class Rule(NamedTuple):
    """How a yield site behaves inside a coroutine of a given signature."""

    check: tc.Check | None  # the yielded value's check; None when everything passes
    none_ok: bool  # whether a resume with nothing sent may make the yield return None


class Signature:
    """The types `R` (yielded) and `S` (sent) of a coroutine or of a yield site.

    Invariant: `check_r`/`check_s` are None iff the form accepts every value or value checks
    are off; `rules` only holds signatures found compatible with this one as a yield site.
    """

    __slots__ = ("check_r", "check_s", "lock", "r", "rules", "s", "self_rule")

    def __init__(self, r: Any, s: Any) -> None:
        self.r = r
        self.s = s
        self.check_r = _value_check(r)
        self.check_s = _value_check(s)
        self.rules: dict[Signature, Rule] = {}
        self.self_rule = Rule(self.check_r, not TYPECHECK or tc.admits_none(s))
        self.lock = threading.Lock()

    def __repr__(self) -> str:
        return f"[{tc.describe(self.r)}, {tc.describe(self.s)}]"

    def rule_in(self, coro: Signature, site: str | None) -> Rule:
        """The rule for this yield site inside a coroutine of `coro`; cached.

        Raises `YieldTypeError` naming both pairs and `site` when they are incompatible.
        """
        rule = self.rules.get(coro)
        if rule is None:
            rule = self._decide(coro, site)
            with self.lock:
                self.rules[coro] = rule
        return rule

    def _decide(self, coro: Signature, site: str | None) -> Rule:
        problems = [
            _mismatch(self.r, coro.r, "yields", "R"),
            _mismatch(coro.s, self.s, "is sent", "S"),
        ]
        found = [p for p in problems if p]
        if found:
            where = f" at {site}" if site else ""
            raise YieldTypeError(
                f"Yield{self}{where} does not fit the active coroutine of {coro}: "
                + "; ".join(found)
                + f". Declare the yield as Yield{coro} (or with types the rule admits: R2 a "
                "subtype of R, S a subtype of S2), or create the coroutine with matching types.",
                expected=(coro.r, coro.s),
                got=(self.r, self.s),
                site=site,
            )
        # A site yielding Any/object is checked against the coroutine's own R.
        check = self.check_r if not tc.is_any_form(self.r) else coro.check_r
        return Rule(check, not TYPECHECK or tc.admits_none(self.s))


def _mismatch(sub: Any, sup: Any, verb: str, param: str) -> str:
    verdict = tc.is_subtype(sub, sup)
    if verdict:
        return ""
    if verdict is None and sub == sup:
        return ""
    a, b = tc.describe(sub), tc.describe(sup)
    if param == "R":
        text = f"the site yields {a}, which is not a subtype of the coroutine's R = {b}"
    else:
        text = f"the coroutine's S = {a} is not a subtype of the site's S2 = {b}"
    if verdict is None:
        text += " (the runtime cannot compare these type forms, so it required them equal)"
    return text


def _value_check(form: Any) -> tc.Check | None:
    if not TYPECHECK:
        return None
    check = tc.checker(form)
    return None if check is tc.accept else check


_interned: dict[tuple[Any, Any], Signature] = {}


def signature(r: Any, s: Any) -> Signature:
    """The interned `Signature` of `(r, s)` (a fresh one for unhashable forms)."""
    key = (r, s)
    try:
        return _interned[key]
    except KeyError:
        sig = _interned[key] = Signature(r, s)
        return sig
    except TypeError:
        return Signature(r, s)


def type_params(item: object, name: str) -> tuple[Any, Any]:
    """The `(R, S)` of a subscription `name[R, S]`; TypeError saying how to write it."""
    if not isinstance(item, tuple) or len(item) != 2:
        raise TypeError(
            f"{name} takes two type arguments, the yielded and the sent type: "
            f"{name}[R, S] (got {name}[{tc.describe(item)}]); write {name}[int, Any] for example"
        )
    return item[0], item[1]


def bad_value(value: object, site: Signature, coro: Signature) -> YieldTypeError:
    """The error for yielding `value` at a site of `site` in a coroutine of `coro`."""
    expected = coro.r if tc.is_any_form(site.r) else site.r
    where = user_site()
    loc = f" at {where}" if where else ""
    return YieldTypeError(
        f"Yield{site}{loc} got {value!r} of type {type(value).__name__}, which does not "
        f"match {tc.describe(expected)} (the coroutine is {coro}); yield a value of type "
        f"{tc.describe(expected)}, or widen the declared types",
        expected=expected,
        got=value,
        site=where,
    )
