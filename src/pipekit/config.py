"""Process-wide defaults: where run history and saved results go unless a run says otherwise.

The default store is, in order: the one set with :func:`configure`; the URL in the
``PIPEKIT_STORE`` environment variable (``postgresql://host/db``, ``sqlite:///path``,
``memory://``); SQLite at ``$PIPEKIT_HOME/history.db``, with ``PIPEKIT_HOME``
defaulting to ``~/.pipekit``. It is opened on first use, not on import, and once per
URL or path. Saved results (what ``pipekit.rerun`` reloads) live in the history store
unless :func:`configure` (``results=``) or ``PIPEKIT_RESULTS`` names a folder.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from pipekit.errors import PipekitError

if TYPE_CHECKING:
    from pipekit.results.base import ResultStore
    from pipekit.stores.base import Store

__all__ = [
    "RESULTS_ENV",
    "STORE_ENV",
    "configure",
    "configured_results",
    "default_store",
    "home",
    "resolve_store",
]

STORE_ENV = "PIPEKIT_STORE"
"""The environment variable naming the default store by URL (see :func:`default_store`)."""

RESULTS_ENV = "PIPEKIT_RESULTS"
"""The environment variable naming a folder for saved results (see :func:`configured_results`)."""

_lock = threading.Lock()
_configured: list[Store] = []  # the configured default, if any (a list avoids `global`)
_results: list[ResultStore] = []
_defaults: dict[str, Store] = {}  # stores opened from PIPEKIT_STORE or PIPEKIT_HOME
_default_results: dict[str, ResultStore] = {}  # folders named by PIPEKIT_RESULTS

_NOT_A_STORE = (
    "does not implement pipekit.stores.Store; pass MemoryStore(), SQLiteStore(path), "
    "PostgresStore(dsn), a URL such as 'postgresql://user@host/db', or another object "
    "with record/get_run/list_runs/attempts/claim/close"
)


def home() -> Path:
    """Return ``$PIPEKIT_HOME`` (default ``~/.pipekit``), read afresh each call."""
    raw = os.environ.get("PIPEKIT_HOME")
    return Path(raw).expanduser() if raw else Path.home() / ".pipekit"


_UNSET: Any = object()


def configure(
    *,
    store: Store | str | None = _UNSET,
    results: ResultStore | os.PathLike[str] | None = _UNSET,
) -> None:
    """Set process-wide defaults; an option left out keeps its value, None restores the default.

    Args:
        store: the run-history store used when a run names none: a store object, or a
            URL that :func:`pipekit.stores.open_store` opens now (``"sqlite:///h.db"``,
            ``"postgresql://user@host/db"``, ``"memory://"``; a plain string without a
            scheme is refused as ambiguous). Default: ``PIPEKIT_STORE``, else SQLite at
            ``$PIPEKIT_HOME/history.db``.
        results: where succeeded tasks' values are kept for re-runs: a result store,
            or a folder as a :class:`pathlib.Path` (:class:`~pipekit.results.FileResults`;
            a shared folder when runs happen on several machines). Default:
            ``PIPEKIT_RESULTS``, else the history store itself (see
            :func:`pipekit.results.results_for`).

    Raises:
        PipekitError: ``store`` is neither a store nor a URL, or ``results`` neither a
            result store nor a path.
        StoreError: the store URL names an unknown scheme or cannot be opened.

    Example:
        >>> pipekit.configure(store=pipekit.stores.MemoryStore())
        >>> pipekit.configure(store="postgresql://pipekit@db.internal/pipekit")  # doctest: +SKIP
    """
    from pipekit.results.base import ResultStore as ResultProtocol
    from pipekit.stores.base import Store as StoreProtocol

    if isinstance(store, str) and "://" in store:
        from pipekit.stores import open_store

        store = open_store(store)
    elif store is not _UNSET and store is not None and not isinstance(store, StoreProtocol):
        raise PipekitError(f"store={store!r} {_NOT_A_STORE}")
    if isinstance(results, os.PathLike):
        from pipekit.results.files import FileResults

        results = FileResults(results)
    elif results is not _UNSET and results is not None and not isinstance(results, ResultProtocol):
        raise PipekitError(
            f"results={results!r} does not implement pipekit.results.ResultStore; pass a "
            "folder as a pathlib.Path, FileResults(path), MemoryResults() or an object with "
            "save/load/delete/prune"
        )
    with _lock:
        if store is not _UNSET:
            _configured[:] = [] if store is None else [store]
        if results is not _UNSET:
            _results[:] = [] if results is None else [results]


def configured_results() -> ResultStore | None:
    """Return the result store set with :func:`configure`, else a folder from PIPEKIT_RESULTS.

    None means: keep results in the history store (the default).
    """
    with _lock:
        if _results:
            return _results[0]
        folder = os.environ.get(RESULTS_ENV)
        if not folder:
            return None
        found = _default_results.get(folder)
        if found is None:
            from pipekit.results.files import FileResults

            found = FileResults(Path(folder).expanduser())
            _default_results[folder] = found
        return found


def default_store() -> Store:
    """Return the configured store, else PIPEKIT_STORE's, else SQLite in PIPEKIT_HOME.

    The environment is read afresh on each call; each URL or path is opened once per
    process and then reused.

    Raises:
        StoreError: PIPEKIT_STORE names an unknown scheme, or the store cannot be opened.
    """
    with _lock:
        if _configured:
            return _configured[0]
        url = os.environ.get(STORE_ENV)
        where = url or str(home() / "history.db")
        store = _defaults.get(where)
        if store is None:
            if url:
                from pipekit.stores import open_store

                store = open_store(url)
            else:
                from pipekit.stores.sqlite import SQLiteStore

                store = SQLiteStore(where)
            _defaults[where] = store
        return store


_by_url: dict[str, Store] = {}


_CONFORMING: set[type] = set()


def resolve_store(store: Store | str | None) -> Store:
    """Return ``store`` itself, the store a URL names, or the default store when None.

    A URL (``"sqlite:///h.db"``, ``"postgresql://user@host/db"``, ``"memory://"``) is
    opened once per process and reused, so runs naming the same URL share one store.
    """
    if store is None:
        return default_store()
    from pipekit.stores.base import Store as StoreProtocol

    if isinstance(store, str) and "://" in store:
        with _lock:
            found = _by_url.get(store)
            if found is None:
                from pipekit.stores import open_store

                found = _by_url[store] = open_store(store)
        return found
    if type(store) in _CONFORMING:
        return cast("Store", store)
    if not isinstance(store, StoreProtocol):  # a slow check: done once per type
        raise PipekitError(f"store={store!r} {_NOT_A_STORE}")
    _CONFORMING.add(type(store))
    return store
