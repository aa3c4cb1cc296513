"""The run-history store contract.

A store records what happens in runs and reads it back. The run loop describes
every state change as a small value object (a *change*) and hands them to
:meth:`Store.record` in order; a store applies each call's changes in one
transaction, so a process killed at any moment leaves the history exactly as it was
after its last recorded change. Reads rebuild :class:`pipekit.Run` objects.

A store also arbitrates between schedulers that share it: :meth:`Store.claim` hands
each scheduled interval to exactly one caller, so two ``serve`` loops on one history
never both start it.

Stores are picked by passing an object (``DAG.run(store=SQLiteStore(path))``), a URL
(``"postgresql://host/db"``, see :func:`pipekit.stores.open_store`), or process-wide
with ``pipekit.configure(store=...)`` or the ``PIPEKIT_STORE`` environment variable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from pipekit._fastinit import fast_init
from pipekit.run import Attempt, Run
from pipekit.state import State

__all__ = [
    "AttemptEnded",
    "AttemptStarted",
    "Change",
    "ResultSaved",
    "RunEnded",
    "RunResumed",
    "RunStarted",
    "Store",
    "TaskStateSet",
]


@dataclass(frozen=True, slots=True)
class RunStarted:
    """A run began: it is ``running`` and all its tasks are ``queued``.

    ``params`` holds JSON-compatible values only (see :mod:`pipekit.params`'s
    ``encode``), ``task_ids`` the DAG's tasks in topological order.
    """

    run_id: str
    dag: str
    params: Mapping[str, Any]
    task_ids: Sequence[str]
    started_at: datetime
    module: str | None = None
    file: str | None = None


@dataclass(frozen=True, slots=True)
class RunResumed:
    """A recorded run is executed again (``pipekit.rerun``): it is ``running`` once more.

    Its end time and error are cleared; each task in ``reset`` goes back to ``queued``
    with its error, start and end times and saved value cleared (it runs again: its
    times become the new execution's, and an old value
    must not feed its downstream tasks; its attempt count and history are kept, so
    attempt numbers keep counting); each task in ``added`` (new in the DAG since the
    run was recorded) is appended, ``queued``.
    """

    run_id: str
    at: datetime
    reset: Sequence[str]
    added: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class RunEnded:
    """A run finished (``success`` or ``failed``); ``error`` explains a run-level failure."""

    run_id: str
    state: State
    ended_at: datetime
    error: str | None = None


@fast_init
@dataclass(frozen=True, slots=True)
class AttemptStarted:
    """Attempt ``number`` of a task started; the task is ``running``."""

    run_id: str
    task_id: str
    number: int
    started_at: datetime


@fast_init
@dataclass(frozen=True, slots=True)
class AttemptEnded:
    """An attempt ended with ``state`` (``success`` or ``failed``).

    ``task_state`` is the task's state afterwards: the attempt's own state, or
    ``queued`` when a failed attempt will be retried.
    """

    run_id: str
    task_id: str
    number: int
    state: State
    ended_at: datetime
    task_state: State
    error: str | None = None


@dataclass(frozen=True, slots=True)
class TaskStateSet:
    """Tasks that never ran took a final state (``upstream_failed`` or ``skipped``).

    ``reason``, when given, is stored as the tasks' error text (why they were skipped).
    """

    run_id: str
    task_ids: Sequence[str]
    state: State
    at: datetime
    reason: str | None = None


@fast_init
@dataclass(frozen=True, slots=True)
class ResultSaved:
    """A succeeded task's value, pickled, kept for re-runs (replaces an earlier one).

    The run loop records it in the same :meth:`Store.record` call as the task's
    :class:`AttemptEnded`, so a task is never recorded as succeeded without its value.
    """

    run_id: str
    task_id: str
    data: bytes


Change = (
    RunStarted | RunResumed | RunEnded | AttemptStarted | AttemptEnded | TaskStateSet | ResultSaved
)
"""Any state change a store records."""


@runtime_checkable
class Store(Protocol):
    """What a run-history store must do.

    A conforming store:

    * applies the changes of one :meth:`record` call atomically and in order, and
      makes them visible to every later read, from this or any other process that
      shares the store;
    * is safe to call from several threads;
    * returns from :meth:`get_run` and :meth:`list_runs` runs whose ``tasks`` are in
      the order given by :class:`RunStarted`, whose ``params`` are the JSON values
      recorded, and whose task ``attempts`` count the attempts started;
    * keeps free text (errors, reasons, module, file) with NUL characters and unpaired
      surrogates escaped, and refuses ids and params that hold what a database cannot
      (NaN, Infinity), as :mod:`pipekit.stores._codec` does for every built-in store.
    """

    def record(self, changes: Sequence[Change]) -> None:
        """Apply ``changes`` in order, all or none.

        The run loop calls it from more than one thread (its own, and its writer's
        flusher thread), one call at a time: a store must not be tied to one thread.
        """
        ...

    def get_run(self, run_id: str) -> Run:
        """Return the run with this id; raise :class:`pipekit.StoreError` if unknown."""
        ...

    def list_runs(
        self, dag: str | None = None, state: str | None = None, limit: int | None = None
    ) -> list[Run]:
        """Return runs, newest first, optionally only of one DAG and/or in one state."""
        ...

    def attempts(self, run_id: str, task_id: str | None = None) -> list[Attempt]:
        """Return the attempt history of a run (or of one of its tasks), oldest first."""
        ...

    def load_result(self, run_id: str, task_id: str) -> bytes | None:
        """Return the pickled value recorded by :class:`ResultSaved`, or None."""
        ...

    def prune_results(self, before: datetime) -> int:
        """Forget the saved values of runs that started before ``before``; return how many runs."""
        ...

    def claim(self, dag: str, key: str, owner: str) -> bool:
        """Take interval ``key`` of ``dag`` for ``owner``: True for exactly one caller.

        Of all callers, in any process that shares the store, exactly one gets True
        for a given ``(dag, key)``; every later or concurrent caller (the same owner
        included) gets False, until :meth:`release`. A claim is durable like a
        recorded change. The scheduler claims an interval before starting its run.
        """
        ...

    def release(self, dag: str, key: str, owner: str) -> None:
        """Give up ``owner``'s claim on ``(dag, key)``; nothing happens if it holds none."""
        ...

    def close(self) -> None:
        """Release connections; the store is not used afterwards."""
        ...
