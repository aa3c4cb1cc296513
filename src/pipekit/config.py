"""Process-wide defaults: where run history goes unless a run says otherwise.

The default store is SQLite at ``$PIPEKIT_HOME/history.db``, with ``PIPEKIT_HOME``
defaulting to ``~/.pipekit``; it is opened on first use, not on import.
:func:`configure` sets another default for the whole process.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from pipekit.errors import PipekitError

if TYPE_CHECKING:
    from pipekit.stores.base import Store

__all__ = ["configure", "default_store", "home", "resolve_store"]

_lock = threading.Lock()
_configured: list[Store] = []  # the configured default, if any (a list avoids `global`)
_defaults: dict[Path, Store] = {}


def home() -> Path:
    """Return ``$PIPEKIT_HOME`` (default ``~/.pipekit``), read afresh each call."""
    raw = os.environ.get("PIPEKIT_HOME")
    return Path(raw).expanduser() if raw else Path.home() / ".pipekit"


def configure(*, store: Store | None = None) -> None:
    """Set the process-wide default store; ``store=None`` restores SQLite in PIPEKIT_HOME.

    Example:
        >>> pipekit.configure(store=pipekit.stores.MemoryStore())
    """
    from pipekit.stores.base import Store as StoreProtocol

    if store is not None and not isinstance(store, StoreProtocol):
        raise PipekitError(
            f"store={store!r} does not implement pipekit.stores.Store; pass MemoryStore(), "
            "SQLiteStore(path) or another object with record/get_run/list_runs/attempts/close"
        )
    with _lock:
        _configured[:] = [] if store is None else [store]


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
