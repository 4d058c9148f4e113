"""Pyright reads `coroutine.aio` as mypy does (tests/typing/test_aio.yml): `await_(aw)` is
the awaitable's result type, `run_sync` checks its arguments, and an `await_` inside a `New`
coroutine is no yield of it. Lines marked ``# error`` must be errors; no other line may be."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CHECKED = """
import asyncio
from collections.abc import Awaitable, Coroutine
from typing import Any
from typing_extensions import assert_type
from coroutine import New, Yield
from coroutine.aio import await_, run_sync

async def fetch(key: str) -> int:
    return len(key)

def body(key: str, aw: Awaitable[bytes], *, scale: int = 1) -> list[int]:
    assert_type(await_(fetch(key)), int)
    assert_type(await_(aw), bytes)
    assert_type(await_(asyncio.sleep(0, result="x")), str)
    wrong: str = await_(fetch(key))  # error
    def inner() -> None:
        Yield[int, None](await_(fetch("b")) * scale)
    return list(New[int, None](inner))

async def main(aw: Awaitable[bytes]) -> None:
    assert_type(await run_sync(body, "k", aw, scale=2), list[int])
    coro = run_sync(body, "k", aw)
    same: Coroutine[Any, Any, list[int]] = assert_type(coro, Coroutine[Any, Any, list[int]])
    assert_type(await asyncio.create_task(same), list[int])
    await run_sync(body, 1, aw)  # error
    await run_sync(body, "k", aw, scale="2")  # error
    await_(3)  # error
"""


def test_pyright_infers_await_as_the_awaitables_result_type(tmp_path: Path) -> None:
    source = tmp_path / "checked.py"
    source.write_text(CHECKED)
    pyright = Path(sys.executable).parent / "pyright"
    cmd = [str(pyright), "--outputjson", "--pythonpath", sys.executable, str(source)]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    report = json.loads(out.stdout)
    errors = {
        d["range"]["start"]["line"] + 1: d["message"]
        for d in report["generalDiagnostics"]
        if d["severity"] == "error"
    }
    marked = {n for n, line in enumerate(CHECKED.splitlines(), 1) if line.endswith("# error")}
    assert set(errors) == marked, errors
