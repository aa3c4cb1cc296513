"""Result stores: where succeeded tasks' values are kept so that re-runs can skip them.

``results_for(store)`` picks the location beside the run history: files under the
SQLite file's directory (``results/``), memory beside a MemoryStore, files under
``$PIPEKIT_HOME/results`` for any other store; ``pipekit.configure(results=...)``
overrides it for the process.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from typing import TYPE_CHECKING, Any

from pipekit.results.base import MISSING, ResultStore
from pipekit.results.files import FileResults
from pipekit.results.memory import MemoryResults

if TYPE_CHECKING:
    from pipekit.stores.base import Store

__all__ = ["MISSING", "FileResults", "MemoryResults", "ResultStore", "results_for"]

_lock = threading.Lock()
_beside: weakref.WeakKeyDictionary[Any, ResultStore] = weakref.WeakKeyDictionary()


def results_for(store: Store) -> ResultStore:
    """Return the result store that goes with the run-history ``store``."""
    from pipekit.config import configured_results, home
    from pipekit.stores.memory import MemoryStore
    from pipekit.stores.sqlite import SQLiteStore

    chosen = configured_results()
    if chosen is not None:
        return chosen
    with _lock:
        try:
            found = _beside.get(store)
        except TypeError:  # a store that cannot be weakly referenced: no caching
            found = None
        if found is None:
            if isinstance(store, MemoryStore):
                found = MemoryResults()
            elif isinstance(store, SQLiteStore):
                found = FileResults(store.path.parent / "results")
            else:
                found = FileResults(home() / "results")
            with contextlib.suppress(TypeError):
                _beside[store] = found
        return found
