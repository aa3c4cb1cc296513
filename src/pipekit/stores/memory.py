"""A run-history store held in this process's memory.

The default when nothing needs to outlive the process: tests, notebooks, one-off
scripts. It follows the same contract as the persistent stores (the contract tests in
``tests/stores`` run against it), so code tried against it behaves the same on SQLite.

History is kept as dicts of frozen values (:class:`~pipekit.TaskRun`,
:class:`~pipekit.run.Attempt`); every change replaces dict entries, and a journal of
the replaced entries undoes a :meth:`MemoryStore.record` call that fails part-way, so
each call is all or nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from pipekit.errors import StoreError
from pipekit.run import Attempt, Run, TaskRun
from pipekit.state import State
from pipekit.stores._codec import (
    check_added,
    check_claim,
    check_limit,
    check_lookup,
    check_names,
    decode_params,
    duplicate_attempt,
    encode_params,
    store_text_or_none,
    to_state,
    to_utc,
)
from pipekit.stores.base import (
    AttemptEnded,
    AttemptStarted,
    Change,
    ResultSaved,
    RunEnded,
    RunResumed,
    RunStarted,
    TaskStateSet,
)

__all__ = ["MemoryStore"]

_ABSENT: Final[Any] = object()

_Undo = list[tuple[dict[Any, Any], Any, Any]]
"""Journal entries (dict, key, previous value or _ABSENT), replayed backwards on failure."""


def _put(d: dict[Any, Any], key: Any, value: Any, undo: _Undo) -> None:
    undo.append((d, key, d.get(key, _ABSENT)))
    d[key] = value


def _drop(d: dict[Any, Any], key: Any, undo: _Undo) -> None:
    if key in d:
        undo.append((d, key, d[key]))
        del d[key]


@dataclass(frozen=True, slots=True)
class _Header:
    """The run-level fields of a run; params stay JSON text so reads hand out copies."""

    id: str
    dag: str
    params: str
    state: State
    started_at: datetime
    module: str | None
    file: str | None
    ended_at: datetime | None = None
    error: str | None = None


class MemoryStore:
    """Keeps run history in dicts, for the life of the process.

    Safe to share between threads (one lock guards every call). Runs, tasks and
    attempts read back equal to what :class:`~pipekit.stores.SQLiteStore` returns
    for the same changes.

    Example:
        >>> from pipekit.stores import MemoryStore
        >>> store = MemoryStore()
        >>> store.list_runs()
        []
    """

    def __init__(self) -> None:
        """Create an empty store."""
        self._lock = threading.Lock()
        self._closed = False
        self._runs: dict[str, _Header] = {}
        self._tasks: dict[str, dict[str, TaskRun]] = {}
        self._attempts: dict[str, dict[tuple[str, int], Attempt]] = {}
        self._apply: dict[type[Any], Callable[[Any, _Undo], None]] = {
            RunStarted: self._run_started,
            AttemptStarted: self._attempt_started,
            AttemptEnded: self._attempt_ended,
            TaskStateSet: self._task_state_set,
            RunEnded: self._run_ended,
            RunResumed: self._run_resumed,
            ResultSaved: self._result_saved,
        }
        self._results: dict[str, dict[str, bytes]] = {}
        self._claims: dict[tuple[str, str], str] = {}

    def __repr__(self) -> str:
        """Show how many runs the store holds."""
        return f"MemoryStore(<{len(self._runs)} runs>)"

    # -- writing -------------------------------------------------------------------

    def record(self, changes: Sequence[Change]) -> None:
        """Apply ``changes`` in order, all or none.

        Raises:
            StoreError: a change names an unknown run, task or attempt, repeats a run id
                or attempt number, carries a naive timestamp, an unknown state or
                params that are not JSON values; nothing of the call is applied.
            TypeError: an item is not a change.
        """
        if not changes:
            return
        with self._lock:
            self._check_open()
            undo: _Undo = []
            try:
                for change in changes:
                    handler = self._apply.get(type(change))
                    if handler is None:
                        handler = self._handler_for(change)
                    handler(change, undo)
            except BaseException:
                for d, key, old in reversed(undo):
                    if old is _ABSENT:
                        del d[key]
                    else:
                        d[key] = old
                raise

    def _handler_for(self, change: object) -> Callable[[Any, _Undo], None]:
        for kind, handler in self._apply.items():
            if isinstance(change, kind):
                return handler
        raise TypeError(
            f"cannot record {change!r}: it is not a change; pass RunStarted, AttemptStarted, "
            "AttemptEnded, TaskStateSet, RunResumed or RunEnded objects"
        )

    def _run_started(self, c: RunStarted, undo: _Undo) -> None:
        run_id = c.run_id
        if run_id in self._runs:
            raise StoreError(
                f"run {run_id!r} is already recorded in the memory store; give every run a new id"
            )
        task_ids = list(c.task_ids)
        if len(set(task_ids)) != len(task_ids):
            raise StoreError(
                f"cannot record run {run_id!r}: its task ids {task_ids!r} repeat an id; "
                "list each task once"
            )
        check_names(run_id, c.dag, task_ids)
        header = _Header(
            run_id,
            c.dag,
            encode_params(c.params, run_id),
            State.RUNNING,
            to_utc(c.started_at, run_id),
            store_text_or_none(c.module),
            store_text_or_none(c.file),
        )
        queued = State.QUEUED
        _put(self._runs, run_id, header, undo)
        _put(self._tasks, run_id, {t: TaskRun(t, queued) for t in task_ids}, undo)
        _put(self._attempts, run_id, {}, undo)

    def _attempt_started(self, c: AttemptStarted, undo: _Undo) -> None:
        run_id, task_id, number = c.run_id, c.task_id, c.number
        tasks = self._run_tasks(run_id)
        task = self._task(tasks, run_id, task_id)
        attempts = self._attempts[run_id]
        if (task_id, number) in attempts:
            raise duplicate_attempt(run_id, task_id, number)
        started = to_utc(c.started_at, run_id)
        running = State.RUNNING
        attempt = Attempt(run_id, task_id, number, running, started)
        new_task = TaskRun(
            task_id,
            running,
            max(task.attempts, number),
            None,
            task.error,
            started if task.started_at is None else task.started_at,
            task.ended_at,
        )
        _put(attempts, (task_id, number), attempt, undo)
        _put(tasks, task_id, new_task, undo)

    def _attempt_ended(self, c: AttemptEnded, undo: _Undo) -> None:
        run_id, task_id, number = c.run_id, c.task_id, c.number
        tasks = self._run_tasks(run_id)
        task = self._task(tasks, run_id, task_id)
        attempts = self._attempts[run_id]
        old = attempts.get((task_id, number))
        if old is None:
            raise StoreError(
                f"run {run_id!r} has no attempt {number} of task {task_id!r}; "
                "record AttemptStarted before AttemptEnded"
            )
        state = to_state(c.state, run_id)
        task_state = to_state(c.task_state, run_id)
        ended = to_utc(c.ended_at, run_id)
        error = c.error
        if error is not None:
            error = store_text_or_none(error)
        attempt = Attempt(run_id, task_id, number, state, old.started_at, ended, error)
        new_task = TaskRun(
            task_id,
            task_state,
            task.attempts,
            None,
            error if state == State.FAILED else None,
            task.started_at,
            ended,
        )
        _put(attempts, (task_id, number), attempt, undo)
        _put(tasks, task_id, new_task, undo)

    def _task_state_set(self, c: TaskStateSet, undo: _Undo) -> None:
        run_id = c.run_id
        tasks = self._run_tasks(run_id)
        state = to_state(c.state, run_id)
        to_utc(c.at, run_id)  # validated like every timestamp, though not stored
        olds = [self._task(tasks, run_id, t) for t in c.task_ids]
        reason = store_text_or_none(c.reason)
        for t in olds:
            error = t.error if reason is None else reason
            new = TaskRun(t.task_id, state, t.attempts, None, error, t.started_at, t.ended_at)
            _put(tasks, t.task_id, new, undo)

    def _run_ended(self, c: RunEnded, undo: _Undo) -> None:
        run_id = c.run_id
        h = self._runs.get(run_id)
        if h is None:
            raise _unknown_run(run_id)
        header = _Header(
            h.id,
            h.dag,
            h.params,
            to_state(c.state, run_id),
            h.started_at,
            h.module,
            h.file,
            to_utc(c.ended_at, run_id),
            store_text_or_none(c.error),
        )
        _put(self._runs, run_id, header, undo)

    def _run_resumed(self, c: RunResumed, undo: _Undo) -> None:
        run_id = c.run_id
        h = self._runs.get(run_id)
        if h is None:
            raise _unknown_run(run_id)
        to_utc(c.at, run_id)
        tasks = self._run_tasks(run_id)
        olds = [self._task(tasks, run_id, t) for t in c.reset]
        added = check_added(run_id, c.added)
        for name in added:
            if name in tasks:
                raise StoreError(
                    f"run {run_id!r} already has task {name!r}; list only new tasks as added"
                )
        header = _Header(
            h.id, h.dag, h.params, State.RUNNING, h.started_at, h.module, h.file, None, None
        )
        _put(self._runs, run_id, header, undo)
        queued = State.QUEUED
        values = self._results.get(run_id, {})
        for t in olds:
            _put(
                tasks,
                t.task_id,
                TaskRun(t.task_id, queued, t.attempts),  # its times start again
                undo,
            )
            _drop(values, t.task_id, undo)  # a task run again gets a new value (or none)
        for name in added:
            _put(tasks, name, TaskRun(name, queued), undo)

    def _result_saved(self, c: ResultSaved, undo: _Undo) -> None:
        tasks = self._run_tasks(c.run_id)
        self._task(tasks, c.run_id, c.task_id)
        if not isinstance(c.data, bytes):
            raise StoreError(f"cannot record the result of {c.task_id!r}: data must be bytes")
        values = self._results.get(c.run_id)
        if values is None:
            values = {}
            _put(self._results, c.run_id, values, undo)
        _put(values, c.task_id, c.data, undo)

    def _run_tasks(self, run_id: str) -> dict[str, TaskRun]:
        tasks = self._tasks.get(run_id)
        if tasks is None:
            raise _unknown_run(run_id)
        return tasks

    @staticmethod
    def _task(tasks: dict[str, TaskRun], run_id: str, task_id: str) -> TaskRun:
        task = tasks.get(task_id)
        if task is None:
            raise StoreError(
                f"run {run_id!r} has no task {task_id!r}; record only the task ids "
                "listed in its RunStarted"
            )
        return task

    # -- reading -------------------------------------------------------------------

    def get_run(self, run_id: str) -> Run:
        """Return the run with this id.

        Raises:
            StoreError: no run has this id.
        """
        check_lookup(run_id=run_id)
        with self._lock:
            self._check_open()
            header = self._runs.get(run_id)
            if header is None:
                raise StoreError(
                    f"no run {run_id!r} in the memory store; check the id: "
                    "store.list_runs() lists the recorded runs"
                )
            return self._build(header)

    def list_runs(
        self, dag: str | None = None, state: str | None = None, limit: int | None = None
    ) -> list[Run]:
        """Return runs, newest first (by start time, then by order recorded).

        Args:
            dag: only runs of the DAG with this name.
            state: only runs in this state (a :class:`State` or its string value).
            limit: at most this many runs (the newest).

        Raises:
            ValueError: ``limit`` is negative.
        """
        check_limit(limit)
        check_lookup(dag=dag)
        with self._lock:
            self._check_open()
            headers = [
                h
                for h in reversed(self._runs.values())
                if (dag is None or h.dag == dag) and (state is None or h.state == state)
            ]
            # A stable sort of the newest-recorded-first list keeps ties in that order.
            headers.sort(key=_started_at, reverse=True)
            if limit is not None:
                headers = headers[:limit]
            return [self._build(h) for h in headers]

    def attempts(self, run_id: str, task_id: str | None = None) -> list[Attempt]:
        """Return the attempts of a run, or of one of its tasks, oldest first.

        Attempts are ordered by start time; attempts that started at the same instant
        are in task order (as listed in :class:`RunStarted`), then by number.

        Raises:
            StoreError: no run has this id, or the run has no task ``task_id``.
        """
        check_lookup(run_id=run_id, task_id=task_id)
        with self._lock:
            self._check_open()
            tasks = self._run_tasks(run_id)
            if task_id is not None:
                self._task(tasks, run_id, task_id)
            position = {t: i for i, t in enumerate(tasks)}
            found = [
                a
                for a in self._attempts[run_id].values()
                if task_id is None or a.task_id == task_id
            ]
        found.sort(key=lambda a: (a.started_at, position[a.task_id], a.number))
        return found

    def load_result(self, run_id: str, task_id: str) -> bytes | None:
        """Return the pickled value saved for the task, or None."""
        check_lookup(run_id=run_id, task_id=task_id)
        with self._lock:
            self._check_open()
            return self._results.get(run_id, {}).get(task_id)

    def prune_results(self, before: datetime) -> int:
        """Forget the saved values of runs that started before ``before``.

        Returns how many runs had a value to forget (a run whose values a re-run
        cleared has none, and is not counted).
        """
        cutoff = to_utc(before, "prune")
        with self._lock:
            self._check_open()
            old = [r for r in self._results if self._runs[r].started_at < cutoff]
            count = sum(1 for r in old if self._results[r])
            for r in old:
                del self._results[r]
        return count

    def claim(self, dag: str, key: str, owner: str) -> bool:
        """Take interval ``key`` of ``dag`` for ``owner``; True for exactly one caller."""
        check_claim(dag, key, owner)
        with self._lock:
            self._check_open()
            if (dag, key) in self._claims:
                return False
            self._claims[(dag, key)] = owner
            return True

    def release(self, dag: str, key: str, owner: str) -> None:
        """Give up ``owner``'s claim on interval ``key`` of ``dag`` (no-op if not held)."""
        check_claim(dag, key, owner)
        with self._lock:
            self._check_open()
            if self._claims.get((dag, key)) == owner:
                del self._claims[(dag, key)]

    def close(self) -> None:
        """Forget nothing, but refuse further use: later calls raise StoreError."""
        with self._lock:
            self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the memory store is closed; create a new MemoryStore")

    def _build(self, h: _Header) -> Run:
        return Run(
            h.id,
            h.dag,
            decode_params(h.params),
            h.state,
            h.started_at,
            h.ended_at,
            dict(self._tasks[h.id]),
            h.module,
            h.file,
            h.error,
        )


def _started_at(h: _Header) -> datetime:
    return h.started_at


def _unknown_run(run_id: str) -> StoreError:
    return StoreError(
        f"no run {run_id!r} in the memory store; check the id (list_runs() shows the "
        "recorded runs) and record RunStarted before other changes of a run"
    )
