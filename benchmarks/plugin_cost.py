"""The mypy plugin's own cost, and that it adds no error: mypy over a real package's sources,
with and without it.

Copies the sources of an installed package (``_pytest`` by default, about 40k lines; rich and
httpx were measured too) into a temporary directory under the package's own name, so that
mypy checks them as a project and their absolute imports reach the copy (not the installed
package, whose function bodies mypy does not read); then times cold runs (empty cache) and
warm runs (after touching one module) with and without ``plugins = coroutine.mypy``. Reports
the median and the minimum of each and the overhead in percent, twice: for the sources as they
are (a project that does not use coroutine), and with ``import coroutine`` added to every
module (one that uses it everywhere). The plugin walks every function of every module in
both: any of them may call a method that an override makes yield. Every run's errors are
compared with those of the first run without the plugin: the script says whether they were
the same, and shows the difference (and exits with 1) if not.

    python benchmarks/plugin_cost.py [--package _pytest] [--repeat 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _lines(tree: Path) -> int:
    return sum(len(p.read_text(errors="replace").splitlines()) for p in tree.rglob("*.py"))


def _errors(out: str) -> list[str]:
    """The error lines of a run, sorted (mypy's "See ..." notes depend on the order)."""
    return sorted(line for line in out.splitlines() if ": error:" in line)


def _run(project: Path, package: str, plugin: bool, cache: Path) -> tuple[float, list[str]]:
    config = project / ("with.ini" if plugin else "without.ini")
    config.write_text(
        "[mypy]\nignore_missing_imports = True\nfollow_imports = silent\n"
        + ("plugins = coroutine.mypy\n" if plugin else "")
    )
    env = dict(os.environ, MYPYPATH=str(ROOT / "stubs"), PYTHONPATH=str(ROOT / "src"))
    cmd = [sys.executable, "-m", "mypy", "--config-file", str(config), "--cache-dir", str(cache)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([*cmd, package], cwd=project, env=env, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    # CPU time, not wall time: the machine may be shared.
    spent = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return spent, _errors(proc.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", default="_pytest")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    spec = importlib.util.find_spec(args.package)
    assert spec is not None and spec.submodule_search_locations, args.package
    source = Path(next(iter(spec.submodule_search_locations)))
    for importing in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            project = Path(tmp)
            tree = project / args.package
            shutil.copytree(source, tree, ignore=shutil.ignore_patterns("__pycache__"))
            if importing:
                for f in tree.rglob("*.py"):
                    f.write_text(f.read_text() + "\nimport coroutine as _coroutine\n")
            lines = _lines(tree)
            what = "every module imports coroutine" if importing else "as is"
            print(f"{args.package} ({what}): {lines} lines of Python")
            same = _measure(project, args.package, args.repeat)
            _plugin_share(project, args.package)
            if not same:
                sys.exit(1)


def _measure(project: Path, package: str, repeat: int) -> bool:
    """Time the runs; return whether all gave the errors of the first run without the plugin
    (a comment added at the end of a module for the warm runs moves no error)."""
    victim = next(iter(sorted((project / package).rglob("*.py"))))
    results: dict[str, list[float]] = {}
    outputs: dict[str, list[str]] = {}
    for rep in range(repeat):
        for plugin in (False, True):
            label = "with plugin" if plugin else "without plugin"
            cache = project / f"cache-{plugin}-{rep}"
            for kind in ("cold", "warm"):
                if kind == "warm":
                    victim.write_text(victim.read_text() + "\n# touched\n")
                spent, errors = _run(project, package, plugin, cache)
                results.setdefault(f"{kind}, {label}", []).append(spent)
                outputs[f"{kind}, {label}, run {rep + 1}"] = errors
    for kind in ("cold", "warm"):
        without, withp = results[f"{kind}, without plugin"], results[f"{kind}, with plugin"]
        base, mid = statistics.median(without), statistics.median(withp)
        # On a shared machine other processes only ever add time: the minimum is the steadier.
        low = min(withp) / min(without) - 1
        print(
            f"{kind}: median {base:.2f} s CPU without, {mid:.2f} s with the plugin: "
            f"{100 * (mid - base) / base:+.1f}% (minimum: {100 * low:+.1f}%)"
        )
    reference = outputs["cold, without plugin, run 1"]
    differ = {run: errors for run, errors in outputs.items() if errors != reference}
    if not differ:
        print(f"errors: the same {len(reference)} in all {len(outputs)} runs, with and without")
    for run, errors in differ.items():
        print(f"errors differ in the {run}:")
        print("\n".join(f"  - {e}" for e in sorted(set(reference) - set(errors))))
        print("\n".join(f"  + {e}" for e in sorted(set(errors) - set(reference))))
    return not differ


_SHARE = """
import sys, time, mypy.api
import coroutine._plugin.store as store, coroutine.mypy as plugin
spent, depth = [0.0], [0]
def timed(f):
    def wrapper(*a, **k):
        depth[0] += 1
        t = time.process_time()
        try:
            return f(*a, **k)
        finally:
            depth[0] -= 1
            if depth[0] == 0:
                spent[0] += time.process_time() - t
    return wrapper
store.Store.summarize = timed(store.Store.summarize)
plugin.check_new = timed(plugin.check_new)
t = time.process_time()
mypy.api.run(["--config-file", "with.ini", "--cache-dir", sys.argv[1], sys.argv[2]])
total = time.process_time() - t
print(f"cold, in one process: {total:.2f} s CPU, of which the plugin's own work "
      f"{spent[0]:.2f} s = {100 * spent[0] / total:.1f}%")
"""


def _plugin_share(project: Path, package: str) -> None:
    """The plugin's share of one cold run, timed inside mypy's process (free of noise from
    other processes): the time spent summarising modules and checking `New` calls."""
    env = dict(os.environ, MYPYPATH=str(ROOT / "stubs"), PYTHONPATH=str(ROOT / "src"))
    cache = project / "cache-share"
    out = subprocess.run(
        [sys.executable, "-c", _SHARE, str(cache), package],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    print(out.stdout.strip())


if __name__ == "__main__":
    main()
