"""A small seeded run of benchmarks/fuzz_durable.py: every hostile state it makes (mutated
real states, keyed, rotated, sealed; structured states; large ones) is refused with
InvalidStateError or restores, within the memory cap. The full run is not part of the suite:
its figures are in docs/how-to/durable.md."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "fuzz_durable.py"


def test_a_small_seeded_fuzz_run_finds_nothing() -> None:
    cmd = [sys.executable, str(SCRIPT), "--cases", "600", "--structured", "200", "--seed", "5",
           "--workers", "1"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "exceptions other than InvalidStateError (DecodeError for raw decoding): 0" in (
        done.stdout
    )
    assert "over the memory cap (64 x bytes + 1 MiB, tracemalloc peak of the whole case): 0;" in (
        done.stdout
    )
