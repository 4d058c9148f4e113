"""Side-by-side timing: every candidate is measured in the same process, interleaved.

The machines are shared and noisy, so a figure alone means little; each benchmark reports
its candidates' times next to a baseline measured in the same rounds, and the ratio. A
round runs each candidate once, in turn; the best of the rounds is kept for each (the least
disturbed run is the closest to the true cost).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass

Bench = Callable[[int], float]
"""A benchmark takes a count of operations and returns the seconds they took."""


@dataclass
class Result:
    name: str
    seconds_per_op: float
    baseline: str
    ratio: float

    @property
    def micros(self) -> float:
        return self.seconds_per_op * 1e6


def compare(candidates: dict[str, Bench], baseline: str, ops: int, rounds: int = 7) -> list[Result]:
    """Time each candidate `rounds` times over `ops` operations, interleaved; best of rounds."""
    best = {name: float("inf") for name in candidates}
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()  # a collection landing in one candidate's run would skew the comparison
    try:
        for _ in range(rounds):
            for name, bench in candidates.items():
                best[name] = min(best[name], bench(ops) / ops)
    finally:
        if gc_was_enabled:
            gc.enable()
    base = best[baseline]
    return [Result(name, t, baseline, t / base) for name, t in best.items()]


def timed(fn: Callable[[], object]) -> float:
    """Seconds `fn()` took."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
