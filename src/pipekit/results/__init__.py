"""Result stores: where succeeded tasks' values are kept so that re-runs can skip them.

``results_for(store)`` picks the location: by default the run history itself (a SQLite
history's task rows, written by the same update as the task's success;
memory for a MemoryStore); ``pipekit.configure(results=FileResults(path))`` puts them
in files instead (a shared folder, say).
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from typing import TYPE_CHECKING, Any

from pipekit.results.base import MISSING, ResultStore
from pipekit.results.files import FileResults
from pipekit.results.memory import MemoryResults
from pipekit.results.store import StoreResults

if TYPE_CHECKING:
    from pipekit.stores.base import Store

__all__ = ["MISSING", "FileResults", "MemoryResults", "ResultStore", "StoreResults", "results_for"]

_lock = threading.Lock()
_beside: weakref.WeakKeyDictionary[Any, ResultStore] = weakref.WeakKeyDictionary()


def results_for(store: Store) -> ResultStore:
    """Return where results of runs recorded in ``store`` are kept.

    The process-wide choice of :func:`pipekit.configure` (``results=``) if any, else the
    history store itself (:class:`StoreResults`: a SQL history's task rows, memory for
    a MemoryStore), else, for a store that cannot hold them, files under
    ``$PIPEKIT_HOME/results``.
    """
    from pipekit.config import configured_results, home

    chosen = configured_results()
    if chosen is not None:
        return chosen
    with _lock:
        try:
            found = _beside.get(store)
        except TypeError:  # a store that cannot be weakly referenced: no caching
            found = None
        if found is None:
            if callable(getattr(store, "load_result", None)):
                found = StoreResults(store)
            else:
                found = FileResults(home() / "results")
            with contextlib.suppress(TypeError):
                _beside[store] = found
        return found
