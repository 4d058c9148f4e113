"""Each example runs on its own, prints what it promises, and agrees with an independent check.

Every example is run as ``python examples/NAME.py`` in a subprocess (as a user would), and
its functions are also imported and compared with a reference computed another way: plain
lists, Python's own evaluator, `string.Template` with a dict, a regular expression.
"""

from __future__ import annotations

import ast
import importlib
import random
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from string import Template
from types import ModuleType
from typing import Any

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, *args: str, timeout: float = 60) -> str:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Traceback" not in out.stderr and "Exception ignored" not in out.stderr, out.stderr
    return out.stdout


@pytest.fixture
def example(request: pytest.FixtureRequest) -> Iterator[ModuleType]:
    """The example module named by the test's parameter, imported from examples/."""
    name: str = request.param
    sys.path.insert(0, str(EXAMPLES))
    try:
        yield importlib.import_module(name)
    finally:
        sys.path.remove(str(EXAMPLES))
        sys.modules.pop(name, None)  # tests may patch module globals (`trace`, `log`)


def uses(name: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("example", [name], indirect=True)


# -- 1. retrofit ----------------------------------------------------------------------


def _defs_in_source_order(source: str) -> list[str]:
    """The reference: function names found by a regular expression, in source order."""
    return re.findall(r"^\s*(?:async\s+)?def\s+(\w+)", source, flags=re.MULTILINE)


def test_retrofit_example_is_lazy_and_agrees_with_the_generator_version() -> None:
    import inspect
    import json

    expected = _defs_in_source_order(inspect.getsource(json))
    lines = run_example("retrofit.py").splitlines()
    assert lines[0] == f"first three functions in json/__init__.py: {', '.join(expected[:3])}"
    assert lines[2] == f"the remaining {len(expected) - 3} found on demand: " + ", ".join(
        expected[3:]
    )
    assert lines[-1] == "same as the generator version: True"


@uses("retrofit")
def test_retrofit_visitor_is_paused_after_each_name(example: Any) -> None:
    names = example.functions_in("def a():\n    def b(): pass\ndef c(): pass\n")
    assert next(names) == "a"
    assert next(names) == "b"
    assert list(names) == ["c"]


@uses("retrofit")
def test_retrofit_finds_what_a_regular_expression_finds_in_a_stdlib_module(
    example: Any,
) -> None:
    import inspect
    import textwrap

    source = inspect.getsource(textwrap)
    assert list(example.functions_in(source)) == _defs_in_source_order(source)


# -- 2. push to pull ------------------------------------------------------------------


def test_push_pull_example_reads_one_chunk_for_the_first_links() -> None:
    lines = run_example("push_pull.py").splitlines()
    first = [f"https://example.org/item/{i}" for i in range(3)]
    assert lines[0] == "first links: " + ", ".join(first)
    read, total = map(int, re.findall(r"\d+", lines[1]))
    assert read == 8192 < total  # one chunk read, of a page of about 1 MB
    assert lines[2] == "links in the whole page: 12000"
    assert lines[3] == f"read in the end: {total} of {total} characters"


@uses("push_pull")
def test_push_pull_events_equal_those_a_collecting_parser_records(example: Any) -> None:
    from html.parser import HTMLParser

    class Collector(HTMLParser):  # the push-style reference: the whole document in a list
        def __init__(self) -> None:
            super().__init__()
            self.events: list[tuple[Any, ...]] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.events.append(("start", tag, dict(attrs), ""))

        def handle_endtag(self, tag: str) -> None:
            self.events.append(("end", tag, {}, ""))

        def handle_data(self, data: str) -> None:
            self.events.append(("data", "", {}, data))

    page = example.sample_page(50) + "<p class=x>a &amp; b<br/>c</p>"
    reference = Collector()
    for i in range(0, len(page), 7):  # fed the same chunks: text may arrive in pieces
        reference.feed(page[i : i + 7])
    reference.close()
    pulled = example.html_events(example.CountingReader(page), chunk_size=7)
    assert [tuple(e) for e in pulled] == reference.events


@uses("push_pull")
def test_push_pull_stops_reading_when_the_consumer_stops(example: Any) -> None:
    stream = example.CountingReader(example.sample_page(5000))
    events = example.html_events(stream, chunk_size=100)
    assert next(events).tag == "html"
    assert stream.consumed == 100
    events.close()  # the parser is unwound; nothing more is read
    assert stream.consumed == 100


# -- 3. same fringe -------------------------------------------------------------------


def test_same_fringe_example_prints_the_verdicts_and_stops_at_the_first_difference() -> None:
    assert run_example("same_fringe.py").splitlines() == [
        "balanced vs left comb: True",  # 1 2 3 4 5 both
        "left comb vs right comb: True",
        "balanced vs 1 2 3 5 4: False",
        "balanced vs its left half: False",
        "two trees of 10000 leaves differing in the first: False, after visiting 2 leaves",
    ]


def _random_tree(mod: Any, leaves: list[int], rng: random.Random) -> Any:
    if len(leaves) == 1:
        return leaves[0]
    cut = rng.randrange(1, len(leaves))
    return mod.Tree(_random_tree(mod, leaves[:cut], rng), _random_tree(mod, leaves[cut:], rng))


def _leaves(mod: Any, t: Any) -> list[int]:
    return _leaves(mod, t.left) + _leaves(mod, t.right) if isinstance(t, mod.Tree) else [t]


@uses("same_fringe")
def test_same_fringe_agrees_with_comparing_flattened_lists(example: Any) -> None:
    rng = random.Random(1958)
    for _ in range(300):
        a = [rng.randrange(3) for _ in range(rng.randrange(1, 8))]
        b = a if rng.random() < 0.5 else [rng.randrange(3) for _ in range(rng.randrange(1, 8))]
        ta, tb = _random_tree(example, a, rng), _random_tree(example, b, rng)
        assert example.same_fringe(ta, tb) == (_leaves(example, ta) == _leaves(example, tb))


# -- 4. Conway's pipeline -------------------------------------------------------------


def test_conway_example_reads_each_card_only_after_the_previous_statement_ran() -> None:
    lines = run_example("conway.py").splitlines()
    cards = [i for i, line in enumerate(lines) if line.startswith("lexer   card")]
    stores = [i for i, line in enumerate(lines) if line.startswith("machine store")]
    assert len(cards) == 3 and len(stores) == 2
    assert cards[0] < stores[0] < cards[1] < stores[1] < cards[2]  # one pass, interleaved
    x = 2 + 3 * 4
    y = (x - 4) * -2
    assert f"output  {x * y + 1}" in lines
    assert lines[-1] == f"variables: x = {x}, y = {y}"


@uses("conway")
def test_conway_compiles_random_programs_to_what_python_computes(example: Any) -> None:
    rng = random.Random(1958)

    def expr(depth: int, names: list[str]) -> str:
        if depth == 0 or rng.random() < 0.3:
            return rng.choice([str(rng.randrange(10)), *names])
        form = rng.choice(["{} + {}", "{} - {}", "{} * {}", "({})", "-{}"])
        return form.format(*(expr(depth - 1, names) for _ in range(form.count("{}"))))

    example.trace = lambda _: None
    for _ in range(50):
        cards: list[str] = []
        names: list[str] = []
        env: dict[str, int] = {}
        for name in "abcd":
            cards.append(f"{name} = {expr(4, names)}")
            env[name] = eval(cards[-1].split(" = ", 1)[1], {}, dict(env))
            names.append(name)
        final = expr(3, names)
        cards.append(f"print {final}")
        assert example.run(cards) == (env, [eval(final, {}, dict(env))])


@uses("conway")
def test_conway_reports_a_syntax_error_with_its_card(example: Any) -> None:
    example.trace = lambda _: None
    with pytest.raises(SyntaxError, match=r"card 2: expected '\)'"):
        example.run(["a = 1", "b = (a + 2", "print b"])


# -- 5. producer/consumer -------------------------------------------------------------


def test_producer_consumer_example_consumes_everything_within_capacity() -> None:
    lines = run_example("producer_consumer.py").splitlines()
    total = sum(i * i for i in range(20))
    assert lines[0] == f"produced 20 items, consumed 20, sum {total}"
    taken = [int(n) for n in re.findall(r"took (\d+)", lines[1])]
    assert len(taken) == 3 and sum(taken) == 20 and min(taken) > 0  # all three got work
    high_water = int(re.findall(r"more than (\d+)", lines[2])[0])
    assert 1 <= high_water <= 3


@uses("producer_consumer")
def test_producers_wait_when_the_queue_is_full_and_consumers_start_before_they_finish(
    example: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    consumed = example.main(["--trace"])
    trace = capsys.readouterr().out.splitlines()
    assert sorted(x for got in consumed.values() for x in got) == sorted(i * i for i in range(20))
    assert any(line.endswith("waits: queue not full") for line in trace)
    first_get = next(i for i, line in enumerate(trace) if " got " in line)
    last_put = max(i for i, line in enumerate(trace) if " put " in line)
    assert first_get < last_put


@uses("producer_consumer")
def test_a_scheduler_whose_tasks_all_wait_reports_a_deadlock(example: Any) -> None:
    example.log = lambda _: None
    queue = example.BoundedQueue(capacity=1)
    with pytest.raises(RuntimeError, match=r"deadlock: every task waits: getter \(queue not"):
        example.run({"getter": queue.get})


# -- 6. cooperative I/O: the echo server ----------------------------------------------


def test_echo_server_serves_100_concurrent_clients_from_one_thread() -> None:
    lines = run_example("echo_server.py", "--timeout", "20", timeout=40).splitlines()
    assert re.fullmatch(r"echo server on 127\.0\.0\.1:\d+, 1 thread", lines[0])
    assert lines[1] == "clients whose 20 round trips all echoed back: 100"
    most_open = int(lines[2].rsplit(" ", 1)[1])
    assert 1 < most_open <= 100  # connections overlapped


@uses("echo_server")
def test_echo_loop_times_out_and_unwinds_a_task_that_waits_forever(example: Any) -> None:
    import socket

    a, b = socket.socketpair()
    unwound = []

    def reader() -> None:
        try:
            example.recv(a, 1)  # b never writes
        finally:
            unwound.append(True)

    loop = example.Loop()
    loop.spawn(reader)
    with a, b, pytest.raises(TimeoutError, match="1 tasks still waiting"):
        a.setblocking(False)
        loop.run(timeout=0.2)
    assert unwound == [True]


# -- 7. async bridge ------------------------------------------------------------------


@uses("async_bridge")
def test_async_bridge_example_renders_with_lookups_in_flight_together(example: Any) -> None:
    lines = run_example("async_bridge.py").splitlines()
    from_dict = {}
    for c in "123":
        fields = {k.split(".")[1]: v for k, v in example.RECORDS.items() if k[0] == c}
        from_dict[c] = Template(example.LETTER.template).substitute(fields)
    assert lines[:3] == [f"letter {c}: {from_dict[c]}" for c in "123"]
    took, alone = map(
        float, re.findall(r"took ([\d.]+) s \(one at a time: ([\d.]+) s\)", lines[3])[0]
    )
    assert took < alone
    assert lines[4] == "most lookups in flight at once: 3"


# -- 8. typed pair (the mypy half is tests/typing/test_typed_example.py) ----------------


def test_typed_example_runs_and_its_broken_twin_fails_at_the_yield_at_run_time() -> None:
    assert run_example("typed.py").splitlines()[-1] == "['ONE', 'TWO', 'THREE']"
    out = run_example("typed_broken.py")
    assert out.startswith("YieldTypeError: Yield[str, None] at ")
    assert "typed_broken.py:" in out and "R = int" in out


def test_every_example_has_a_docstring_saying_how_to_run_it() -> None:
    for path in sorted(EXAMPLES.glob("*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text()))
        assert doc, f"{path.name} has no module docstring"
        assert f"examples/{path.name}" in doc or path.name in doc, path.name


# -- found while writing the examples: interpreter exit --------------------------------

_AT_EXIT = """
from coroutine import New, Yield
def body():
    try:
        Yield[int, None](1)
    finally:
        print("finally ran")
{how}
"""


def test_a_coroutine_kept_alive_by_an_uncaught_exception_is_unwound_quietly_at_exit() -> None:
    how = "def main():\n    c = New[int, None](body)\n    c.Next()\n    raise ValueError\nmain()"
    out = subprocess.run(
        [sys.executable, "-c", _AT_EXIT.format(how=how)], capture_output=True, text=True
    )
    assert "Exception ignored" not in out.stderr
    assert out.stdout == "finally ran\n"


def test_a_coroutine_suspended_in_a_global_at_exit_runs_its_finally_like_a_generator() -> None:
    how = "c = New[int, None](body)\nc.Next()"
    out = subprocess.run(
        [sys.executable, "-c", _AT_EXIT.format(how=how)], capture_output=True, text=True
    )
    assert out.stdout == "finally ran\n"
