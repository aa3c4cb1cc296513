"""What the SQL stores share: applying changes with SQL, and reading runs back from rows.

:class:`~pipekit.stores.SQLiteStore` and :class:`~pipekit.stores.PostgresStore` keep
the same tables and apply each change with the same statements; they differ only in
the driver's placeholder, how a timestamp is stored (ISO-8601 text in SQLite, a
``timestamptz`` in PostgreSQL), how params are written and read as JSON, the name of
the larger-of-two function, and how connections and transactions are handled. So this
module holds the statements (:func:`statements`, one set per dialect) and the store
logic (:class:`SQLStore`); each store subclass provides a connection, the
``_writing``/``_reading`` transactions and its timestamp codec.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol

from pipekit.errors import StoreError
from pipekit.run import Attempt, Run, TaskRun
from pipekit.state import State
from pipekit.stores._batch import GROUPED, plan
from pipekit.stores._codec import (
    STATES,
    check_added,
    check_claim,
    check_limit,
    check_lookup,
    check_names,
    decode_params,
    duplicate_attempt,
    encode_params,
    state_text,
    store_text_or_none,
    to_utc,
)
from pipekit.stores._statements import Statements, statements
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

__all__ = ["Cursor", "SQLStore", "Statements", "check_version", "not_a_change", "statements"]


class Cursor(Protocol):
    """The part of a DB-API cursor the stores use (sqlite3's and psycopg's both fit)."""

    @property
    def rowcount(self) -> int:
        """Rows the last statement changed (summed over an executemany)."""
        ...

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Any:
        """Run one statement."""
        ...

    def executemany(self, sql: str, params: Sequence[Sequence[Any]], /) -> Any:
        """Run one statement once per parameter row."""
        ...

    def fetchone(self) -> Any:
        """The next row of the last query, or None."""
        ...

    def fetchall(self) -> list[Any]:
        """The remaining rows of the last query."""
        ...


def check_version(found: object, where: str, newest: int) -> int:
    """Return the schema version ``found`` in a history as an int, if this code can use it.

    Raises:
        StoreError: the version is not a positive number (not a pipekit history, or a
            damaged one), or is newer than ``newest`` (written by a newer pipekit).
    """
    try:
        version = int(str(found))
    except ValueError:
        version = 0
    if version < 1:
        raise StoreError(
            f"run history {where} has an unrecognised schema version {found!r}; "
            "it was not written by pipekit, or is damaged: point the store elsewhere"
        )
    if version > newest:
        raise StoreError(
            f"run history {where} has schema version {version}, newer than the "
            f"version {newest} this pipekit understands; upgrade pipekit to use it"
        )
    return version


def not_a_change(change: object) -> TypeError:
    """The error for an item of record() that is not a change."""
    return TypeError(
        f"cannot record {change!r}: it is not a change; pass RunStarted, AttemptStarted, "
        "AttemptEnded, TaskStateSet, RunResumed, RunEnded or ResultSaved objects"
    )


class _OneByOne(Exception):
    """A batch must be applied change by change (raised inside the rolled-back try)."""


class SQLStore(ABC):
    """The store logic shared by the SQL stores; a subclass supplies the database.

    A subclass sets :attr:`sql` (its dialect's :class:`Statements`), :attr:`where`
    (the history's name in messages), ``_duplicate`` (the driver's unique-violation
    error), sets ``_stamp``, ``_time`` and ``_time_or_none`` (functions converting a
    timestamp to and from its column type) on the instance, and
    implements ``_writing()`` and ``_reading()``: context managers that hold the
    connection and one transaction (a write transaction that commits on success and
    rolls back on any error; a read transaction that sees one snapshot), translating
    the driver's errors into :class:`~pipekit.StoreError`.
    """

    sql: Statements
    where: str
    _duplicate: type[Exception]
    _HANDLERS: ClassVar[dict[type[Any], Callable[[SQLStore, Cursor, Any], None]]]

    _stamp: Callable[[datetime, str], Any]
    """A timestamp as the column stores it (StoreError when naive)."""
    _time: Callable[[Any], datetime]
    """A column's timestamp as an aware UTC datetime."""
    _time_or_none: Callable[[Any], datetime | None]
    """Like ``_time``, passing NULL through as None."""

    @abstractmethod
    def _writing(self) -> AbstractContextManager[Cursor]:
        """Hold the connection and one write transaction (see the class docstring)."""

    @abstractmethod
    def _reading(self) -> AbstractContextManager[Cursor]:
        """Hold the connection and one read-only snapshot (see the class docstring)."""

    # -- writing -------------------------------------------------------------------

    def record(self, changes: Sequence[Change]) -> None:
        """Apply ``changes`` in order as one transaction, all or none.

        Raises:
            StoreError: a change names an unknown run, task or attempt, repeats a run id
                or attempt number, carries a naive timestamp, an unknown state or
                params that are not JSON values; or the database cannot be written.
                Nothing of the call is applied.
            TypeError: an item is not a change.
        """
        if not changes:
            return
        try:
            with self._writing() as cur:
                self._apply_grouped(cur, changes)
            return
        except _OneByOne:
            pass  # rolled back: apply change by change, which names the bad change
        with self._writing() as cur:
            self._apply_each(cur, changes)

    def _apply_grouped(self, cur: Cursor, changes: Sequence[Change]) -> None:
        """Apply runs of attempt changes with ``executemany`` (see :mod:`._batch`)."""
        handlers = self._HANDLERS
        start = 0
        for i, change in enumerate(changes):
            if isinstance(change, GROUPED):
                continue
            if i > start:
                self._apply_plan(cur, changes[start:i])
            start = i + 1
            handler = handlers.get(type(change))
            if handler is None:
                handler = _handler_for(change)
            handler(self, cur, change)
        if start < len(changes):
            self._apply_plan(cur, changes[start:])

    def _apply_plan(self, cur: Cursor, group: Sequence[Change]) -> None:
        p = plan(group, self._stamp)
        if p is None:
            raise _OneByOne
        sql = self.sql
        try:
            if p.end_attempts:
                _update_every(cur, sql.end_attempt, p.end_attempts)
                cur.executemany(sql.end_task, p.end_tasks)
            if p.finish_tasks:
                _update_every(cur, sql.finish_task, p.finish_tasks)
                cur.executemany(sql.insert_finished_attempt, p.finished_attempts)
            if p.start_tasks:
                _update_every(cur, sql.start_task, p.start_tasks)
                cur.executemany(sql.insert_attempt, p.started_attempts)
            if p.results:
                _update_every(cur, sql.save_result, p.results)
        except self._duplicate as exc:
            raise _OneByOne from exc

    def _apply_each(self, cur: Cursor, changes: Sequence[Change]) -> None:
        """Apply ``changes`` one by one (the slow path that names a bad change)."""
        handlers = self._HANDLERS
        pairs = _finished_in_batch(changes)
        for i, change in enumerate(changes):
            if i in pairs:
                j = pairs[i]
                if j >= 0:  # started and ended in this batch: one row each, not two
                    self._attempt_finished(cur, change, changes[j])  # type: ignore[arg-type]
                continue
            handler = handlers.get(type(change))
            if handler is None:
                handler = _handler_for(change)
            handler(self, cur, change)

    def _attempt_finished(self, cur: Cursor, c: AttemptStarted, e: AttemptEnded) -> None:
        """AttemptStarted and its AttemptEnded of the same batch, written together."""
        run_id, task_id, number = c.run_id, c.task_id, c.number
        started = self._stamp(c.started_at, run_id)
        state = state_text(e.state, run_id)
        task_state = state_text(e.task_state, run_id)
        ended = self._stamp(e.ended_at, run_id)
        error = store_text_or_none(e.error)
        task_error = error if state == "failed" else None
        cur.execute(
            self.sql.finish_task,
            (task_state, number, started, ended, task_error, None, run_id, task_id),
        )
        if cur.rowcount != 1:
            self._find_task(cur, run_id, task_id)
        try:
            cur.execute(
                self.sql.insert_finished_attempt,
                (run_id, task_id, number, state, started, ended, error),
            )
        except self._duplicate as exc:
            raise duplicate_attempt(run_id, task_id, number) from exc

    def _run_started(self, cur: Cursor, c: RunStarted) -> None:
        run_id = c.run_id
        task_ids = list(c.task_ids)
        if len(set(task_ids)) != len(task_ids):
            raise StoreError(
                f"cannot record run {run_id!r}: its task ids {task_ids!r} repeat an id; "
                "list each task once"
            )
        check_names(run_id, c.dag, task_ids)
        row = (
            run_id,
            c.dag,
            encode_params(c.params, run_id),
            store_text_or_none(c.module),
            store_text_or_none(c.file),
            self._stamp(c.started_at, run_id),
        )
        try:
            cur.execute(self.sql.insert_run, row)
        except self._duplicate as exc:
            raise StoreError(
                f"run {run_id!r} is already recorded in {self.where}; give every run a new id"
            ) from exc
        if task_ids:
            cur.executemany(self.sql.insert_task, [(run_id, t, i) for i, t in enumerate(task_ids)])

    def _attempt_started(self, cur: Cursor, c: AttemptStarted) -> None:
        run_id, task_id, number = c.run_id, c.task_id, c.number
        started = self._stamp(c.started_at, run_id)
        cur.execute(self.sql.start_task, (number, started, run_id, task_id))
        if cur.rowcount != 1:
            self._find_task(cur, run_id, task_id)
        try:
            cur.execute(self.sql.insert_attempt, (run_id, task_id, number, started))
        except self._duplicate as exc:
            raise duplicate_attempt(run_id, task_id, number) from exc

    def _attempt_ended(self, cur: Cursor, c: AttemptEnded) -> None:
        run_id, task_id, number = c.run_id, c.task_id, c.number
        state = state_text(c.state, run_id)
        task_state = state_text(c.task_state, run_id)
        ended = self._stamp(c.ended_at, run_id)
        error = store_text_or_none(c.error)
        cur.execute(self.sql.end_attempt, (state, ended, error, run_id, task_id, number))
        if cur.rowcount != 1:
            self._find_task(cur, run_id, task_id)
            raise StoreError(
                f"run {run_id!r} has no attempt {number} of task {task_id!r}; "
                "record AttemptStarted before AttemptEnded"
            )
        task_error = error if state == "failed" else None
        cur.execute(self.sql.end_task, (task_state, ended, task_error, None, run_id, task_id))

    def _task_state_set(self, cur: Cursor, c: TaskStateSet) -> None:
        run_id = c.run_id
        state = state_text(c.state, run_id)
        to_utc(c.at, run_id)  # validated like every timestamp, though not stored
        task_ids = c.task_ids
        if not task_ids:
            if cur.execute(self.sql.run_exists, (run_id,)).fetchone() is None:
                raise self._unknown_run(run_id)
            return
        reason = store_text_or_none(c.reason)
        cur.executemany(self.sql.set_task_state, [(state, reason, run_id, t) for t in task_ids])
        if cur.rowcount != len(task_ids):
            for task_id in task_ids:
                self._find_task(cur, run_id, task_id)

    def _run_ended(self, cur: Cursor, c: RunEnded) -> None:
        run_id = c.run_id
        state = state_text(c.state, run_id)
        ended = self._stamp(c.ended_at, run_id)
        cur.execute(self.sql.end_run, (state, ended, store_text_or_none(c.error), run_id))
        if cur.rowcount != 1:
            raise self._unknown_run(run_id)

    def _run_resumed(self, cur: Cursor, c: RunResumed) -> None:
        run_id = c.run_id
        to_utc(c.at, run_id)
        cur.execute(self.sql.resume_run, (run_id,))  # also locks the run's row until commit
        if cur.rowcount != 1:
            raise self._unknown_run(run_id)
        reset = list(c.reset)
        added = check_added(run_id, c.added)
        if reset:
            cur.executemany(self.sql.reset_task, [(run_id, t) for t in reset])
            if cur.rowcount != len(reset):
                for task_id in reset:
                    self._find_task(cur, run_id, task_id)
        if added:
            (last,) = cur.execute(self.sql.last_position, (run_id,)).fetchone()
            rows = [(run_id, t, last + 1 + i) for i, t in enumerate(added)]
            try:
                cur.executemany(self.sql.insert_task, rows)
            except self._duplicate as exc:
                raise StoreError(
                    f"run {run_id!r} already has one of the tasks {added!r}; "
                    "list only new tasks as added"
                ) from exc

    def _result_saved(self, cur: Cursor, c: ResultSaved) -> None:
        if not isinstance(c.data, bytes):
            raise StoreError(f"cannot record the result of {c.task_id!r}: data must be bytes")
        cur.execute(self.sql.save_result, (c.data, c.run_id, c.task_id))
        if cur.rowcount != 1:
            self._find_task(cur, c.run_id, c.task_id)

    def _find_task(self, cur: Cursor, run_id: str, task_id: str) -> None:
        """Raise StoreError if the run or its task is not recorded (the slow path)."""
        if cur.execute(self.sql.task_exists, (run_id, task_id)).fetchone() is not None:
            return
        if cur.execute(self.sql.run_exists, (run_id,)).fetchone() is None:
            raise self._unknown_run(run_id)
        raise StoreError(
            f"run {run_id!r} has no task {task_id!r}; record only the task ids "
            "listed in its RunStarted"
        )

    def prune_results(self, before: datetime) -> int:
        """Delete the saved values of runs that started before ``before``."""
        cutoff = self._stamp(before, "prune")
        with self._writing() as cur:
            (count,) = cur.execute(self.sql.count_pruned, (cutoff,)).fetchone()
            cur.execute(self.sql.prune_results, (cutoff,))
            cur.execute(self.sql.prune_old_results, (cutoff,))
        return int(count)

    def claim(self, dag: str, key: str, owner: str) -> bool:
        """Take interval ``key`` of ``dag`` for ``owner``; True for exactly one caller.

        The claims table's primary key is ``(dag, key)``: of any number of callers, in
        this process or others, the first to commit inserts the row and gets True; the
        others (their insert finds the row, or waits for the first to commit and then
        finds it) get False. The claim lasts until :meth:`release`.
        """
        check_claim(dag, key, owner)
        now = self._stamp(datetime.now(UTC), "claim")
        with self._writing() as cur:
            cur.execute(self.sql.claim, (dag, key, owner, now))
            return cur.rowcount == 1

    def release(self, dag: str, key: str, owner: str) -> None:
        """Give up ``owner``'s claim on interval ``key`` of ``dag`` (no-op if not held)."""
        check_claim(dag, key, owner)
        with self._writing() as cur:
            cur.execute(self.sql.release, (dag, key, owner))

    # -- reading -------------------------------------------------------------------

    def get_run(self, run_id: str) -> Run:
        """Return the run with this id.

        Raises:
            StoreError: no run has this id, or the database cannot be read.
        """
        check_lookup(run_id=run_id)
        with self._reading() as cur:
            row = cur.execute(self.sql.select_run, (run_id,)).fetchone()
            tasks = cur.execute(self.sql.select_tasks, (run_id,)).fetchall() if row else []
        if row is None:
            raise StoreError(
                f"no run {run_id!r} in run history {self.where}; check the id: "
                "`pipekit runs` (or store.list_runs()) lists the recorded runs"
            )
        return self._run(row, {t[1]: self._task(t) for t in tasks})

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
            StoreError: the database cannot be read.
        """
        check_limit(limit)
        key = (dag is not None, state is not None, limit is not None)
        runs_sql, tasks_sql = self.sql.list_queries[key]
        args: list[object] = []
        if dag is not None:
            args.append(dag)
        if state is not None:
            args.append(str(state))
        if limit is not None:
            args.append(limit)
        check_lookup(dag=dag)
        with self._reading() as cur:
            rows = cur.execute(runs_sql, args).fetchall()
            task_rows = cur.execute(tasks_sql, args).fetchall() if rows else []
        tasks: dict[str, dict[str, TaskRun]] = {row[0]: {} for row in rows}
        for t in task_rows:
            tasks[t[0]][t[1]] = self._task(t)
        return [self._run(row, tasks[row[0]]) for row in rows]

    def attempts(self, run_id: str, task_id: str | None = None) -> list[Attempt]:
        """Return the attempts of a run, or of one of its tasks, oldest first.

        Attempts are ordered by start time; attempts that started at the same instant
        are in task order (as listed in :class:`RunStarted`), then by number.

        Raises:
            StoreError: no run has this id, the run has no task ``task_id``, or the
                database cannot be read.
        """
        check_lookup(run_id=run_id, task_id=task_id)
        with self._reading() as cur:
            if task_id is None:
                rows = cur.execute(self.sql.select_attempts, (run_id,)).fetchall()
                if not rows and cur.execute(self.sql.run_exists, (run_id,)).fetchone() is None:
                    raise self._unknown_run(run_id)
            else:
                rows = cur.execute(self.sql.select_task_attempts, (run_id, task_id)).fetchall()
                if not rows:
                    self._find_task(cur, run_id, task_id)
        t, maybe = self._time, self._time_or_none
        return [Attempt(r[0], r[1], r[2], STATES[r[3]], t(r[4]), maybe(r[5]), r[6]) for r in rows]

    def load_result(self, run_id: str, task_id: str) -> bytes | None:
        """Return the pickled value saved for the task, or None."""
        check_lookup(run_id=run_id, task_id=task_id)
        with self._reading() as cur:
            row = cur.execute(self.sql.load_result, (run_id, task_id)).fetchone()
        return None if row is None or row[0] is None else bytes(row[0])

    # -- rows and errors -----------------------------------------------------------

    def _task(self, r: tuple[Any, ...]) -> TaskRun:
        """Build a TaskRun from a row of task columns."""
        maybe = self._time_or_none
        return TaskRun(r[1], STATES[r[2]], r[3], None, r[4], maybe(r[5]), maybe(r[6]))

    def _run(self, r: tuple[Any, ...], tasks: dict[str, TaskRun]) -> Run:
        """Build a Run from a row of run columns and its tasks."""
        state: State = STATES[r[2]]
        return Run(
            r[0],
            r[1],
            decode_params(r[3]),
            state,
            self._time(r[7]),
            self._time_or_none(r[8]),
            tasks,
            r[4],
            r[5],
            r[6],
        )

    def _unknown_run(self, run_id: str) -> StoreError:
        return StoreError(
            f"no run {run_id!r} in run history {self.where}; check the id (list_runs() shows "
            "the recorded runs) and record RunStarted before other changes of a run"
        )


SQLStore._HANDLERS = {
    RunStarted: SQLStore._run_started,
    AttemptStarted: SQLStore._attempt_started,
    AttemptEnded: SQLStore._attempt_ended,
    TaskStateSet: SQLStore._task_state_set,
    RunEnded: SQLStore._run_ended,
    RunResumed: SQLStore._run_resumed,
    ResultSaved: SQLStore._result_saved,
}


def _update_every(cur: Cursor, statement: str, rows: list[tuple[Any, ...]]) -> None:
    """Run an ``UPDATE`` once per row, every row matching one row of the database.

    A row that matches nothing (an unknown run, task or attempt) sends the batch to the
    change-by-change path, which names it.
    """
    cur.executemany(statement, rows)
    if cur.rowcount != len(rows):
        raise _OneByOne


def _handler_for(change: object) -> Callable[[SQLStore, Cursor, Any], None]:
    for kind, handler in SQLStore._HANDLERS.items():
        if isinstance(change, kind):
            return handler
    raise not_a_change(change)


def _finished_in_batch(changes: Sequence[Change]) -> dict[int, int]:
    """Pair each AttemptStarted with its AttemptEnded later in the same batch.

    Returns index of the start -> index of the end, and index of the end -> -1 (skip).
    Only attempts with nothing in between but other tasks' attempts, run starts and ends,
    and saved results are paired: applying both at the start's place then leaves
    exactly the rows that applying them apart would. Another attempt of the same task
    starting or ending in between (its state would otherwise be overwritten by the
    pair's, applied earlier) leaves the start unpaired.
    """
    started: dict[tuple[str, str], tuple[int, int]] = {}  # task -> (number, index)
    pairs: dict[int, int] = {}
    for i, c in enumerate(changes):
        kind = type(c)
        if kind is AttemptStarted:
            # A start still open for this task stays unpaired: this one lies between.
            started[(c.run_id, c.task_id)] = (c.number, i)  # type: ignore[union-attr]
        elif kind is AttemptEnded:
            s = started.pop((c.run_id, c.task_id), None)  # type: ignore[union-attr]
            if s is not None and s[0] == c.number:  # type: ignore[union-attr]
                pairs[s[1]] = i
                pairs[i] = -1
        elif kind is not ResultSaved and kind is not RunStarted and kind is not RunEnded:
            # TaskStateSet, RunResumed, anything else: pair nothing across them.
            run_id = getattr(c, "run_id", None)
            for key in [k for k in started if run_id is None or k[0] == run_id]:
                del started[key]
    return pairs
