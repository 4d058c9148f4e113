"""coroutine.workflow's public names, argument checks and error messages."""

from __future__ import annotations

import pytest

import coroutine.workflow as w
from coroutine.workflow import Engine, RetryPolicy, StoreURLError, activity


def test_every_public_name_is_exported_once_and_resolves() -> None:
    assert len(w.__all__) == len(set(w.__all__)) and w.__all__ == sorted(w.__all__)
    for name in w.__all__:
        assert getattr(w, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        w.nope  # noqa: B018


def test_activity_needs_a_module_level_function() -> None:
    with pytest.raises(TypeError, match="module-level function"):
        activity(lambda: None)


@pytest.mark.parametrize("kwargs", [{"attempts": 0}, {"backoff": -1.0}])
def test_retry_policy_refuses_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="RetryPolicy"):
        activity(**kwargs)  # type: ignore[arg-type]


def test_retry_delays_grow_from_the_backoff_up_to_the_cap() -> None:
    p = RetryPolicy(attempts=5, backoff=0.1, multiplier=2.0, max_backoff=0.3)
    assert [p.delay(n) for n in (1, 2, 3, 4)] == [0.1, 0.2, 0.3, 0.3]
    assert RetryPolicy() == RetryPolicy(attempts=3, backoff=0.1)


@pytest.mark.parametrize("url", ["mysql://x/y", "sqlite:///", "sqlite:///tmp/x.db?prefix=no-dash"])
def test_bad_store_urls_say_what_to_use(url: str) -> None:
    with pytest.raises(StoreURLError, match=r"sqlite:///|identifier"):
        Engine(url)


def script_flow() -> None:
    """Stands for a workflow defined in a script run as __main__."""


script_flow.__module__ = "__main__"


class _NoExecutor:
    def submit(self, store_url: str, id: str, step: int, lease: float) -> None:
        raise AssertionError("nothing may be submitted")


def test_a_workflow_in_main_is_refused_when_workers_run_the_steps(tmp_path: object) -> None:
    with Engine(f"sqlite:///{tmp_path}/s.db", _NoExecutor()) as e:
        with pytest.raises(TypeError, match="__main__, which the executor's workers cannot"):
            e.start(script_flow)
