"""Task results kept in this process's memory, beside a :class:`~pipekit.stores.MemoryStore`."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from pipekit.results.base import MISSING

__all__ = ["MemoryResults"]


class MemoryResults:
    """Keeps results in a dict (values are kept as they are, not copied)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[str, tuple[datetime, dict[str, Any]]] = {}

    def save(self, run_id: str, task_id: str, value: Any) -> bool:
        """Keep ``value``."""
        with self._lock:
            _, values = self._runs.get(run_id, (None, {}))
            values[task_id] = value
            self._runs[run_id] = (datetime.now(UTC), values)
        return True

    def load(self, run_id: str, task_id: str) -> Any:
        """Return the kept value or :data:`MISSING`."""
        with self._lock:
            entry = self._runs.get(run_id)
            return MISSING if entry is None else entry[1].get(task_id, MISSING)

    def delete(self, run_id: str) -> None:
        """Forget the run's values."""
        with self._lock:
            self._runs.pop(run_id, None)

    def prune(self, before: datetime) -> int:
        """Forget runs last written before ``before``."""
        with self._lock:
            old = [r for r, (when, _) in self._runs.items() if when < before]
            for r in old:
                del self._runs[r]
        return len(old)
