"""The Celery executor's recovery paths: duplicate and lost step messages."""

from __future__ import annotations

import threading
import time

import pytest
import wf_programs as wp
from services import require
from wf_support import RABBITMQ, REDIS, Procs, drop_amqp, subprocess_env

from coroutine.workflow import CeleryExecutor, Engine


def _wait_done(e: Engine, id: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while e.status(id) == "running":
        assert time.monotonic() < deadline, f"{e.store.get(id)} after {timeout} s"
        time.sleep(0.05)


@pytest.mark.parametrize("broker", [REDIS, RABBITMQ], ids=["redis", "rabbitmq"])
def test_duplicate_step_messages_run_the_step_once(
    redis_url: str,
    effects: str,
    procs: Procs,
    queue: str,
    broker: str,
    request: pytest.FixtureRequest,
) -> None:
    if broker == RABBITMQ:
        require("rabbitmq")
    env = subprocess_env(effects)
    nodes = [f"d{i}" for i in range(3)]
    for node in nodes:
        procs.start(["celery-worker", broker, "--queue", queue, "--name", node], env)
    executor = CeleryExecutor(broker, queue=queue)
    if broker == RABBITMQ:
        request.addfinalizer(lambda: drop_amqp(queue, nodes))
    with Engine(redis_url, executor) as e:
        id = e.start(wp.chain, 5, 0.3)  # slow steps: the duplicates arrive during them
        for _ in range(3):  # as a broker redelivering, or a supervisor resubmitting
            executor.submit(redis_url, id, 0, 30.0)
        _wait_done(e, id)
        assert e.result(id) == wp.expected_chain(5)
    executor.close()
    assert wp.effect_counts(effects) == {f"{id}:{k}": 1 for k in range(5)}


def test_a_lost_step_message_is_resubmitted_by_the_supervise_command(
    redis_url: str, effects: str, procs: Procs, queue: str
) -> None:
    env = subprocess_env(effects)
    procs.start(["celery-worker", REDIS, "--queue", queue, "--name", "s0"], env)
    with Engine(redis_url) as e:  # no executor: the first step's message is never sent
        id = e.start(wp.chain, 3)
        time.sleep(1.0)
        assert e.status(id) == "running" and e.store.get(id).step == 0  # type: ignore[union-attr]
        procs.start(["supervise", redis_url, REDIS, "--queue", queue, "--lease", "0.5"], env)
        _wait_done(e, id)
        assert e.result(id) == wp.expected_chain(3)


def test_a_workflow_no_celery_worker_can_import_says_why_and_the_supervisor_logs_it(
    redis_url: str, effects: str, procs: Procs, queue: str, caplog: pytest.LogCaptureFixture
) -> None:
    env = subprocess_env(effects)
    procs.start(["celery-worker", REDIS, "--queue", queue, "--name", "m0"], env)
    executor = CeleryExecutor(REDIS, queue=queue)
    with Engine(redis_url, executor, lease=1.0) as e:
        id = e.start(wp.chain, 2)
        e.store._r.hset(e.store._k("wf", id), "entry", "wf_no_such_module:chain")  # type: ignore[attr-defined]
        executor.submit(redis_url, id, 0, 1.0)
        deadline = time.monotonic() + 30
        while "wf_no_such_module" not in e.info(id).last_error:
            assert time.monotonic() < deadline, e.info(id)
            time.sleep(0.05)
        assert "cannot resume it: ModuleNotFoundError" in e.info(id).last_error
        t = threading.Thread(target=e.run, kwargs={"until_idle": False, "poll": 0.05})
        t.start()
        try:
            deadline = time.monotonic() + 30
            while "cannot proceed" not in caplog.text:
                assert time.monotonic() < deadline, "the supervisor never says why"
                time.sleep(0.05)
        finally:
            e.stop()
            t.join()
        assert f"workflow {id} cannot proceed: worker " in caplog.text
        assert e.status(id) == "running"
    executor.close()
