"""The result-store contract: where the values of succeeded tasks are kept for re-runs.

A re-run (``pipekit.rerun``) skips the tasks that already succeeded, but their
downstream tasks still need their values: the run loop saves each succeeded task's
return value here, and a re-run loads it back. A task with ``@task(persist=False)``
is not saved; a re-run executes it again when a downstream task needs its value.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol, runtime_checkable

__all__ = ["MISSING", "ResultStore"]


class _Missing:
    """The type of :data:`MISSING`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
"""What :meth:`ResultStore.load` returns when no value was saved."""


@runtime_checkable
class ResultStore(Protocol):
    """Keeps task results by run id and task id.

    A conforming store makes a saved value readable by every later :meth:`load` of the
    same run and task (from any process that shares the store), replaces a value saved
    again, never exposes a half-written value, and is safe to use from several threads.
    """

    def save(self, run_id: str, task_id: str, value: Any) -> bool:
        """Keep ``value``; return False (keeping nothing) when it cannot be serialised."""
        ...

    def load(self, run_id: str, task_id: str) -> Any:
        """Return the saved value, or :data:`MISSING`."""
        ...

    def prune(self, before: datetime) -> int:
        """Forget the values of runs last written before ``before``; return how many runs."""
        ...
