"""The mypy plugin for `coroutine`: ``plugins = ["coroutine.mypy"]``.

What it adds to the stubs' checks:

* the reachability check: a ``New[R, S](fn)`` or ``NewWithReturn[R, S](fn)`` from which a
  ``Yield[R2, S2]`` (or ``LoadContext[R2, S2]``) that does not fit ``[R, S]`` is reachable is
  an error at the ``New`` call, with code ``coroutine-yield``, naming the yield's function and
  the path of calls; it follows calls into every module mypy checks, calls through a
  declared class to the overrides in the ``New``'s import closure, and the callbacks that
  functions, classes and instances passed to a call stand for (`_plugin/callbacks.py`), and
  reads ``class __coroutine_yields__`` declarations in modules whose bodies mypy cannot see
  (installed packages, stubs); `_plugin/store.py` says how the facts survive the cache;
* on mypy < 2.2, which ignores ``__new__``'s return type, the types of ``Yield[R, S](v)``,
  ``LoadContext[R, S]()`` and ``New[R, S](fn)``.

Under ``dmypy`` the reachability check works from the daemon's live ASTs and stays right
after edits (see `_plugin/daemon.py`); with ``--use-fine-grained-cache``, whose modules have
no bodies, it is off, and the plugin says so once.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from mypy.checker_state import checker_state
from mypy.nodes import MypyFile
from mypy.options import Options
from mypy.plugin import FunctionContext, Plugin, ReportConfigContext
from mypy.types import Type
from mypy.version import __version__ as mypy_version

from ._plugin import daemon
from ._plugin.check import YIELD_MISMATCH, as_generic, check_new, yield_result
from ._plugin.store import Store

__all__ = ["YIELD_MISMATCH", "CoroutinePlugin", "plugin"]

__version__ = 4
"""Bumped on every change of behaviour or of the stored format: it invalidates caches."""

# mypy 1.x writes the cache after freeing bodies: summarise while checking instead.
_LEGACY = int(mypy_version.split(".")[0]) < 2

_YIELD = ("coroutine.Yield",)
_LOAD = ("coroutine.LoadContext",)
_NEW = ("coroutine.New", "coroutine.NewWithReturn")


class CoroutinePlugin(Plugin):
    """Dispatches on fullnames; the work is in `coroutine._plugin`."""

    def __init__(self, options: Options) -> None:
        super().__init__(options)
        self._store: Store | None = None
        self._touched: MypyFile | None = None
        # Under the daemon: live ASTs, unless it loads modules from its cache (no bodies).
        self._live = options.fine_grained_incremental and not options.use_fine_grained_cache
        self._off = options.fine_grained_incremental and options.use_fine_grained_cache
        self._checkers: dict[str, object] = {}  # module id -> the last checker seen (live)
        self._warned = False
        self._hooks: dict[str, Callable[[FunctionContext], Type]] = {}
        for name in _YIELD:
            self._hooks[name] = yield_result
        for name in _LOAD:
            self._hooks[name] = partial(as_generic, suffix="LoadContext")
        for name in _NEW:
            self._hooks[name] = partial(self._new, suffix=name.rpartition(".")[2])

    # -- hooks ------------------------------------------------------------------------

    def get_function_hook(self, fullname: str) -> Callable[[FunctionContext], Type] | None:
        self._touch()
        return self._hooks.get(fullname)

    def get_method_hook(self, fullname: str) -> None:
        self._touch()

    def get_attribute_hook(self, fullname: str) -> None:
        self._touch()

    def report_config_data(self, ctx: ReportConfigContext) -> Any:
        if not ctx.is_check:
            tree = self._modules.get(ctx.id) if self._modules else None
            if tree is not None:
                self._summarize(tree)
        # The daemon stores digests, not closures: its cache entries are not for mypy's.
        return {"coroutine.mypy": __version__, "daemon": self._live}

    def get_additional_deps(self, file: MypyFile) -> list[tuple[int, str, int]]:
        if self._live:  # read (anew): see _plugin/daemon.py
            self._store_().forget(file)
            daemon.link(file)
        return []

    def get_additional_indirect_deps(self, file: MypyFile) -> set[str]:
        self._summarize(file)  # the last moment the body is alive (legacy mode)
        return set()

    # -- work -------------------------------------------------------------------------

    def _store_(self) -> Store:
        if self._store is None or self._store.modules is not self._modules:
            self._store = Store(self._modules or {}, live=self._live)
        return self._store

    def _summarize(self, tree: MypyFile) -> None:
        if not self._off:
            self._store_().summarize(tree)

    def _touch(self) -> None:
        """On mypy 1.x the hooks above come too late: summarise the module being checked.
        Under the daemon, a new checker of a module means its targets were analysed anew."""
        if not _LEGACY and not self._live:
            return
        checker = checker_state.type_checker
        tree = getattr(checker, "tree", None)
        if not isinstance(tree, MypyFile):
            return
        if self._live:
            if self._checkers.get(tree.fullname) is not checker:
                self._checkers[tree.fullname] = checker
                self._store_().refresh(tree)
        elif tree is not self._touched:
            self._touched = tree
            self._summarize(tree)

    def _new(self, ctx: FunctionContext, suffix: str) -> Type:
        if self._off:
            if not self._warned:
                self._warned = True
                ctx.api.msg.note(
                    "coroutine.mypy: the yield reachability check is off with "
                    "--use-fine-grained-cache (its modules have no bodies); run dmypy "
                    "without it, or mypy",
                    ctx.context,
                )
        else:
            tree = getattr(ctx.api, "tree", None)  # the TypeChecker's module
            check_new(ctx, self._store_(), tree if isinstance(tree, MypyFile) else None, suffix)
        return as_generic(ctx, suffix)


def plugin(version: str) -> type[CoroutinePlugin]:
    """mypy's entry point."""
    return CoroutinePlugin
