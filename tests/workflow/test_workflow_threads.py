"""An `Engine` shared by the threads of a process (a web server's request threads), on every
store: each thread starts workflows and runs steps; every step runs once."""

from __future__ import annotations

import threading

import wf_programs as wp
from wf_support import scaled

from coroutine.workflow import Engine


def test_one_engine_shared_by_four_threads_runs_every_workflow_once(
    store_url: str, effects: str
) -> None:
    n = scaled(40)
    errors: list[BaseException] = []
    ids: list[str] = []
    with Engine(store_url, batch=1) as e:

        def request(k: int) -> None:
            try:
                mine = [e.start(wp.small, 1000 * k + j) for j in range(n)]
                ids.extend(mine)
                e.run()
                e.info(mine[0])
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=request, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        e.run()  # what a thread left claimed by a sibling that was still on it
        assert len(ids) == 4 * n
        rows = {r.id: r for r in e.list()}
        assert {(rows[i].status, rows[i].step) for i in ids} == {("done", 2)}
    counts = wp.effect_counts(effects)
    assert set(counts) == {f"{i}:{k}" for i in ids for k in (0, 1)}
    assert set(counts.values()) == {1}
