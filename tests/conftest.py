"""Shared fixtures: every test must leave no suspended coroutine behind."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from coroutine import Coroutine


def _suspended_coroutines() -> list[Coroutine[object, object]]:
    return [o for o in gc.get_objects() if isinstance(o, Coroutine) and o.status == "suspended"]


@pytest.fixture(autouse=True)
def no_coroutine_outlives_its_test() -> Iterator[None]:
    before = {id(c) for c in _suspended_coroutines()}
    yield
    gc.collect()
    leaked = [c for c in _suspended_coroutines() if id(c) not in before]
    assert not leaked, f"suspended coroutines outlived the test: {leaked}"
