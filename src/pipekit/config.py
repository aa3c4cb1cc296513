"""Process-wide defaults: where run history goes unless a run says otherwise.

The default store is SQLite at ``$PIPEKIT_HOME/history.db``, with ``PIPEKIT_HOME``
defaulting to ``~/.pipekit``; it is opened on first use, not on import.
:func:`configure` sets another default for the whole process.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipekit.errors import PipekitError

if TYPE_CHECKING:
    from pipekit.results.base import ResultStore
    from pipekit.stores.base import Store

__all__ = ["configure", "configured_results", "default_store", "home", "resolve_store"]

_lock = threading.Lock()
_configured: list[Store] = []  # the configured default, if any (a list avoids `global`)
_results: list[ResultStore] = []
_defaults: dict[Path, Store] = {}


def home() -> Path:
    """Return ``$PIPEKIT_HOME`` (default ``~/.pipekit``), read afresh each call."""
    raw = os.environ.get("PIPEKIT_HOME")
    return Path(raw).expanduser() if raw else Path.home() / ".pipekit"


_UNSET: Any = object()


def configure(*, store: Store | None = _UNSET, results: ResultStore | None = _UNSET) -> None:
    """Set process-wide defaults; an option left out keeps its value, None restores the default.

    Args:
        store: the run-history store used when a run names none (default: SQLite at
            ``$PIPEKIT_HOME/history.db``).
        results: where succeeded tasks' values are kept for re-runs (default: beside
            the history, see :func:`pipekit.results.results_for`).

    Example:
        >>> pipekit.configure(store=pipekit.stores.MemoryStore())
    """
    from pipekit.results.base import ResultStore as ResultProtocol
    from pipekit.stores.base import Store as StoreProtocol

    if store is not _UNSET and store is not None and not isinstance(store, StoreProtocol):
        raise PipekitError(
            f"store={store!r} does not implement pipekit.stores.Store; pass MemoryStore(), "
            "SQLiteStore(path) or another object with record/get_run/list_runs/attempts/close"
        )
    if results is not _UNSET and results is not None and not isinstance(results, ResultProtocol):
        raise PipekitError(
            f"results={results!r} does not implement pipekit.results.ResultStore; pass "
            "FileResults(path), MemoryResults() or an object with save/load/delete/prune"
        )
    with _lock:
        if store is not _UNSET:
            _configured[:] = [] if store is None else [store]
        if results is not _UNSET:
            _results[:] = [] if results is None else [results]


def configured_results() -> ResultStore | None:
    """Return the result store set with :func:`configure`, if any."""
    with _lock:
        return _results[0] if _results else None


def default_store() -> Store:
    """Return the configured store, else the SQLite store in PIPEKIT_HOME (one per path)."""
    with _lock:
        if _configured:
            return _configured[0]
        path = home() / "history.db"
        store = _defaults.get(path)
        if store is None:
            from pipekit.stores.sqlite import SQLiteStore

            store = SQLiteStore(path)
            _defaults[path] = store
        return store


def resolve_store(store: Store | None) -> Store:
    """Return ``store`` itself, or the default store when it is None."""
    if store is None:
        return default_store()
    from pipekit.stores.base import Store as StoreProtocol

    if not isinstance(store, StoreProtocol):
        raise PipekitError(
            f"store={store!r} does not implement pipekit.stores.Store; pass MemoryStore(), "
            "SQLiteStore(path) or another object with record/get_run/list_runs/attempts/close"
        )
    return store
