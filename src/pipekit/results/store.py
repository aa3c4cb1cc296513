"""Task results kept in the run-history store itself (the default).

A SQL history keeps each saved value in its task's row (``task_runs.result``), a
memory history in memory: the run loop records a task's value
(:class:`~pipekit.stores.ResultSaved`) in the same transaction as its success, so the
history never says a task succeeded without the value a re-run needs. This adapter
gives that the :class:`ResultStore` shape.
"""

from __future__ import annotations

import pickle
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pipekit.results.base import MISSING

if TYPE_CHECKING:
    from pipekit.stores.base import Store

__all__ = ["StoreResults", "dumps"]


def dumps(value: Any) -> bytes | None:
    """Pickle ``value`` (cloudpickle when plain pickle cannot), or None if it cannot be."""
    try:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        try:
            import cloudpickle

            return bytes(cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
        except Exception:
            return None


class StoreResults:
    """Results in the history store: ``save`` records a ResultSaved change, ``load`` reads it."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def __repr__(self) -> str:
        """Name the store."""
        return f"StoreResults({self.store!r})"

    def save(self, run_id: str, task_id: str, value: Any) -> bool:
        """Record the pickled value; False if it cannot be pickled."""
        from pipekit.stores.base import ResultSaved

        data = dumps(value)
        if data is None:
            return False
        self.store.record([ResultSaved(run_id, task_id, data)])
        return True

    def load(self, run_id: str, task_id: str) -> Any:
        """Unpickle the saved value, or return :data:`MISSING` (none, or unreadable)."""
        data = self.store.load_result(run_id, task_id)
        if data is None:
            return MISSING
        try:
            return pickle.loads(data)
        except Exception:
            return MISSING

    def delete(self, run_id: str) -> None:
        """Not offered by the history store: prune by age instead."""

    def prune(self, before: datetime) -> int:
        """Forget the values of runs that started before ``before``."""
        return self.store.prune_results(before)
