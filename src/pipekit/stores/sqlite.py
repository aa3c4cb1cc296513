"""A run-history store in one SQLite file, shared by threads and processes.

SQLite needs no server and keeps a project's history in one file. The store opens
the file in WAL mode, so readers never wait for the writer, and writes each
:meth:`SQLiteStore.record` call as one ``BEGIN IMMEDIATE`` transaction: the call
takes the write lock before reading anything (waiting up to ``timeout`` seconds for
other writers, in this process or others), so concurrent writers queue instead of
failing, and a process killed at any moment leaves the file as of its last
committed call. ``synchronous=NORMAL`` trades durability of the last few commits on
power loss (never on a process crash) for commits that do not wait for the disk.

The file carries its schema version in a ``meta`` table; a store refuses a file
written by a newer pipekit rather than misreading it.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from pipekit.errors import StoreError
from pipekit.run import Attempt, Run, TaskRun
from pipekit.state import State
from pipekit.stores._codec import (
    STATES,
    check_limit,
    decode_params,
    encode_params,
    from_text,
    from_text_or_none,
    state_text,
    to_text,
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

__all__ = ["SCHEMA_VERSION", "SQLiteStore"]

SCHEMA_VERSION: Final = 1
"""The schema this code writes; files with a newer version are refused."""

_SCHEMA: Final = (
    # seq keeps the order runs were recorded in, the tie-breaker of list_runs().
    """CREATE TABLE IF NOT EXISTS runs (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        dag TEXT NOT NULL,
        state TEXT NOT NULL,
        params TEXT NOT NULL,
        module TEXT,
        file TEXT,
        error TEXT,
        started_at TEXT NOT NULL,
        ended_at TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS runs_by_start ON runs (started_at)",
    "CREATE INDEX IF NOT EXISTS runs_by_dag ON runs (dag, started_at)",
    "CREATE INDEX IF NOT EXISTS runs_by_state ON runs (state, started_at)",
    """CREATE TABLE IF NOT EXISTS task_runs (
        run_id TEXT NOT NULL,
        task_id TEXT NOT NULL,
        position INTEGER NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        started_at TEXT,
        ended_at TEXT,
        PRIMARY KEY (run_id, task_id)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS attempts (
        run_id TEXT NOT NULL,
        task_id TEXT NOT NULL,
        number INTEGER NOT NULL,
        state TEXT NOT NULL,
        started_at TEXT NOT NULL,
        ended_at TEXT,
        error TEXT,
        PRIMARY KEY (run_id, task_id, number)
    ) WITHOUT ROWID""",
    # Values of succeeded tasks, pickled, for re-runs (written with the task's success).
    """CREATE TABLE IF NOT EXISTS results (
        run_id TEXT NOT NULL,
        task_id TEXT NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (run_id, task_id)
    ) WITHOUT ROWID""",
)

_INSERT_RUN: Final = (
    "INSERT INTO runs (id, dag, state, params, module, file, started_at)"
    " VALUES (?, ?, 'running', ?, ?, ?, ?)"
)
_INSERT_TASK: Final = (
    "INSERT INTO task_runs (run_id, task_id, position, state) VALUES (?, ?, ?, 'queued')"
)
_START_TASK: Final = (
    "UPDATE task_runs SET state = 'running', attempts = MAX(attempts, ?),"
    " started_at = COALESCE(started_at, ?) WHERE run_id = ? AND task_id = ?"
)
_INSERT_ATTEMPT: Final = (
    "INSERT INTO attempts (run_id, task_id, number, state, started_at)"
    " VALUES (?, ?, ?, 'running', ?)"
)
_END_ATTEMPT: Final = (
    "UPDATE attempts SET state = ?, ended_at = ?, error = ?"
    " WHERE run_id = ? AND task_id = ? AND number = ?"
)
_END_TASK: Final = (
    "UPDATE task_runs SET state = ?, ended_at = ?, error = ? WHERE run_id = ? AND task_id = ?"
)
_SET_TASK_STATE: Final = (
    "UPDATE task_runs SET state = ?, error = COALESCE(?, error) WHERE run_id = ? AND task_id = ?"
)
_END_RUN: Final = "UPDATE runs SET state = ?, ended_at = ?, error = ? WHERE id = ?"
_RESUME_RUN: Final = "UPDATE runs SET state = 'running', ended_at = NULL, error = NULL WHERE id = ?"
_RESET_TASK: Final = (
    "UPDATE task_runs SET state = 'queued', error = NULL, ended_at = NULL"
    " WHERE run_id = ? AND task_id = ?"
)
_SAVE_RESULT: Final = "INSERT OR REPLACE INTO results (run_id, task_id, data) VALUES (?, ?, ?)"
_LOAD_RESULT: Final = "SELECT data FROM results WHERE run_id = ? AND task_id = ?"
_PRUNE_RESULTS: Final = (
    "DELETE FROM results WHERE run_id IN (SELECT id FROM runs WHERE started_at < ?)"
)
_COUNT_PRUNED: Final = (
    "SELECT count(DISTINCT r.run_id) FROM results AS r JOIN runs ON runs.id = r.run_id"
    " WHERE runs.started_at < ?"
)
_LAST_POSITION: Final = "SELECT COALESCE(MAX(position), -1) FROM task_runs WHERE run_id = ?"

_RUN_COLUMNS: Final = "id, dag, state, params, module, file, error, started_at, ended_at"
_TASK_COLUMNS: Final = "run_id, task_id, state, attempts, error, started_at, ended_at"
_SELECT_RUN: Final = f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?"
_SELECT_TASKS: Final = f"SELECT {_TASK_COLUMNS} FROM task_runs WHERE run_id = ? ORDER BY position"
_RUN_EXISTS: Final = "SELECT 1 FROM runs WHERE id = ?"
_TASK_EXISTS: Final = "SELECT 1 FROM task_runs WHERE run_id = ? AND task_id = ?"
_SELECT_ATTEMPTS: Final = (
    "SELECT a.run_id, a.task_id, a.number, a.state, a.started_at, a.ended_at, a.error"
    " FROM attempts AS a JOIN task_runs AS t ON t.run_id = a.run_id AND t.task_id = a.task_id"
    " WHERE a.run_id = ?{task} ORDER BY a.started_at, t.position, a.number"
)


def _list_queries(dag: bool, state: bool, limit: bool) -> tuple[str, str]:
    """Return the SQL of list_runs() for one combination of filters: runs, then their tasks."""
    conditions = [c for c, on in (("dag = ?", dag), ("state = ?", state)) if on]
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    selected = f"FROM runs{where} ORDER BY started_at DESC, seq DESC{' LIMIT ?' if limit else ''}"
    runs = f"SELECT {_RUN_COLUMNS} {selected}"
    if where or limit:
        tasks = (
            f"SELECT {_TASK_COLUMNS} FROM task_runs"
            f" WHERE run_id IN (SELECT id {selected}) ORDER BY run_id, position"
        )
    else:
        tasks = f"SELECT {_TASK_COLUMNS} FROM task_runs ORDER BY run_id, position"
    return runs, tasks


_LIST_QUERIES: Final = {
    (d, s, n): _list_queries(d, s, n)
    for d in (False, True)
    for s in (False, True)
    for n in (False, True)
}


class SQLiteStore:
    """Keeps run history in a SQLite file that threads and processes can share.

    One connection serves all threads of a process, guarded by a lock; other
    processes open their own store on the same file. Each :meth:`record` call is one
    transaction. Errors of the sqlite3 module surface as
    :class:`~pipekit.StoreError` naming the file.

    Args:
        path: the database file; it and its parent directories are created if missing.
        timeout: seconds to wait for another writer's lock before raising StoreError.

    Example:
        >>> import tempfile, pathlib
        >>> from pipekit.stores import SQLiteStore
        >>> store = SQLiteStore(pathlib.Path(tempfile.mkdtemp()) / "history.db")
        >>> store.list_runs()
        []
        >>> store.close()
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 30.0) -> None:
        """Open (creating if needed) the history database at ``path``.

        Raises:
            StoreError: the file cannot be created or opened, is not a pipekit history
                database, or was written by a newer version of pipekit.
        """
        self.path = Path(path)
        """The database file."""
        self.timeout = timeout
        """Seconds a write waits for another writer before giving up."""
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the directory of run history {self.path}: {exc}; "
                "choose a path in a writable directory"
            ) from exc
        try:
            conn = sqlite3.connect(
                self.path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise self._failure("open", exc) from exc
        try:
            self._prepare(conn)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, sqlite3.Error):
                raise self._failure("open", exc) from exc
            raise
        self._conn: sqlite3.Connection | None = conn
        self._cur: sqlite3.Cursor | None = conn.cursor()
        self._apply: dict[type[Any], Callable[[sqlite3.Cursor, Any], None]] = {
            RunStarted: self._run_started,
            AttemptStarted: self._attempt_started,
            AttemptEnded: self._attempt_ended,
            TaskStateSet: self._task_state_set,
            RunEnded: self._run_ended,
            RunResumed: self._run_resumed,
            ResultSaved: self._result_saved,
        }

    def __repr__(self) -> str:
        """Show the database file."""
        return f"SQLiteStore({str(self.path)!r})"

    def _prepare(self, conn: sqlite3.Connection) -> None:
        """Set the connection up and create or check the schema, in one write transaction.

        Two processes opening a new file at once serialise on ``BEGIN IMMEDIATE``; the
        second finds the schema the first created.
        """
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
            else:
                self._check_version(row[0])
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _check_version(self, found: object) -> None:
        try:
            version = int(str(found))
        except ValueError:
            version = None
        if version is None or version < 1:
            raise StoreError(
                f"run history {self.path} has an unrecognised schema version {found!r}; "
                "it was not written by pipekit, or is damaged: point the store at another file"
            )
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"run history {self.path} has schema version {version}, newer than the "
                f"version {SCHEMA_VERSION} this pipekit understands; upgrade pipekit to use it"
            )

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
        with self._lock:
            cur = self._cur
            if cur is None:
                raise self._closed()
            try:
                cur.execute("BEGIN IMMEDIATE")
                apply = self._apply
                for change in changes:
                    handler = apply.get(type(change))
                    if handler is None:
                        handler = self._handler_for(change)
                    handler(cur, change)
                cur.execute("COMMIT")
            except BaseException as exc:
                self._rollback()
                if isinstance(exc, sqlite3.Error):
                    raise self._failure("write", exc) from exc
                raise

    def _handler_for(self, change: object) -> Callable[[sqlite3.Cursor, Any], None]:
        for kind, handler in self._apply.items():
            if isinstance(change, kind):
                return handler
        raise TypeError(
            f"cannot record {change!r}: it is not a change; pass RunStarted, AttemptStarted, "
            "AttemptEnded, TaskStateSet, RunResumed or RunEnded objects"
        )

    def _run_started(self, cur: sqlite3.Cursor, c: RunStarted) -> None:
        run_id = c.run_id
        task_ids = list(c.task_ids)
        if len(set(task_ids)) != len(task_ids):
            raise StoreError(
                f"cannot record run {run_id!r}: its task ids {task_ids!r} repeat an id; "
                "list each task once"
            )
        row = (
            run_id,
            c.dag,
            encode_params(c.params, run_id),
            c.module,
            c.file,
            to_text(c.started_at, run_id),
        )
        try:
            cur.execute(_INSERT_RUN, row)
        except sqlite3.IntegrityError as exc:
            raise StoreError(
                f"run {run_id!r} is already recorded in {self.path}; give every run a new id"
            ) from exc
        cur.executemany(_INSERT_TASK, [(run_id, t, i) for i, t in enumerate(task_ids)])

    def _attempt_started(self, cur: sqlite3.Cursor, c: AttemptStarted) -> None:
        run_id, task_id, number = c.run_id, c.task_id, c.number
        started = to_text(c.started_at, run_id)
        cur.execute(_START_TASK, (number, started, run_id, task_id))
        if cur.rowcount != 1:
            self._find_task(cur, run_id, task_id)
        try:
            cur.execute(_INSERT_ATTEMPT, (run_id, task_id, number, started))
        except sqlite3.IntegrityError as exc:
            raise StoreError(
                f"attempt {number} of task {task_id!r} in run {run_id!r} is already "
                "recorded; number each attempt of a task once"
            ) from exc

    def _attempt_ended(self, cur: sqlite3.Cursor, c: AttemptEnded) -> None:
        run_id, task_id, number = c.run_id, c.task_id, c.number
        state = state_text(c.state, run_id)
        task_state = state_text(c.task_state, run_id)
        ended = to_text(c.ended_at, run_id)
        error = c.error
        cur.execute(_END_ATTEMPT, (state, ended, error, run_id, task_id, number))
        if cur.rowcount != 1:
            self._find_task(cur, run_id, task_id)
            raise StoreError(
                f"run {run_id!r} has no attempt {number} of task {task_id!r}; "
                "record AttemptStarted before AttemptEnded"
            )
        task_error = error if state == "failed" else None
        cur.execute(_END_TASK, (task_state, ended, task_error, run_id, task_id))

    def _task_state_set(self, cur: sqlite3.Cursor, c: TaskStateSet) -> None:
        run_id = c.run_id
        state = state_text(c.state, run_id)
        to_utc(c.at, run_id)  # validated like every timestamp, though not stored
        task_ids = c.task_ids
        if not task_ids:
            if cur.execute(_RUN_EXISTS, (run_id,)).fetchone() is None:
                raise self._unknown_run(run_id)
            return
        reason = c.reason
        cur.executemany(_SET_TASK_STATE, [(state, reason, run_id, t) for t in task_ids])
        if cur.rowcount != len(task_ids):
            for task_id in task_ids:
                self._find_task(cur, run_id, task_id)

    def _run_ended(self, cur: sqlite3.Cursor, c: RunEnded) -> None:
        run_id = c.run_id
        state = state_text(c.state, run_id)
        cur.execute(_END_RUN, (state, to_text(c.ended_at, run_id), c.error, run_id))
        if cur.rowcount != 1:
            raise self._unknown_run(run_id)

    def _run_resumed(self, cur: sqlite3.Cursor, c: RunResumed) -> None:
        run_id = c.run_id
        to_utc(c.at, run_id)
        cur.execute(_RESUME_RUN, (run_id,))
        if cur.rowcount != 1:
            raise self._unknown_run(run_id)
        reset = list(c.reset)
        if reset:
            cur.executemany(_RESET_TASK, [(run_id, t) for t in reset])
            if cur.rowcount != len(reset):
                for task_id in reset:
                    self._find_task(cur, run_id, task_id)
        if c.added:
            (last,) = cur.execute(_LAST_POSITION, (run_id,)).fetchone()
            rows = [(run_id, t, last + 1 + i) for i, t in enumerate(c.added)]
            try:
                cur.executemany(_INSERT_TASK, rows)
            except sqlite3.IntegrityError as exc:
                raise StoreError(
                    f"run {run_id!r} already has one of the tasks {list(c.added)!r}; "
                    "list only new tasks as added"
                ) from exc

    def _result_saved(self, cur: sqlite3.Cursor, c: ResultSaved) -> None:
        if not isinstance(c.data, bytes):
            raise StoreError(f"cannot record the result of {c.task_id!r}: data must be bytes")
        self._find_task(cur, c.run_id, c.task_id)
        cur.execute(_SAVE_RESULT, (c.run_id, c.task_id, c.data))

    def _find_task(self, cur: sqlite3.Cursor, run_id: str, task_id: str) -> None:
        """Raise StoreError if the run or its task is not recorded (the slow path)."""
        if cur.execute(_TASK_EXISTS, (run_id, task_id)).fetchone() is not None:
            return
        if cur.execute(_RUN_EXISTS, (run_id,)).fetchone() is None:
            raise self._unknown_run(run_id)
        raise StoreError(
            f"run {run_id!r} has no task {task_id!r}; record only the task ids "
            "listed in its RunStarted"
        )

    # -- reading -------------------------------------------------------------------

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Cursor]:
        """Hold the lock and one read transaction, so several queries see one snapshot."""
        with self._lock:
            cur = self._cur
            if cur is None:
                raise self._closed()
            try:
                cur.execute("BEGIN")
                yield cur
                cur.execute("COMMIT")
            except BaseException as exc:
                self._rollback()
                if isinstance(exc, sqlite3.Error):
                    raise self._failure("read", exc) from exc
                raise

    def get_run(self, run_id: str) -> Run:
        """Return the run with this id.

        Raises:
            StoreError: no run has this id, or the database cannot be read.
        """
        with self._reading() as cur:
            row = cur.execute(_SELECT_RUN, (run_id,)).fetchone()
            tasks = cur.execute(_SELECT_TASKS, (run_id,)).fetchall() if row else []
        if row is None:
            raise StoreError(
                f"no run {run_id!r} in run history {self.path}; check the id: "
                "`pipekit runs` (or store.list_runs()) lists the recorded runs"
            )
        return _run(row, {t[1]: _task(t) for t in tasks})

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
        runs_sql, tasks_sql = _LIST_QUERIES[dag is not None, state is not None, limit is not None]
        args: list[object] = []
        if dag is not None:
            args.append(dag)
        if state is not None:
            args.append(str(state))
        if limit is not None:
            args.append(limit)
        with self._reading() as cur:
            rows = cur.execute(runs_sql, args).fetchall()
            task_rows = cur.execute(tasks_sql, args).fetchall() if rows else []
        tasks: dict[str, dict[str, TaskRun]] = {row[0]: {} for row in rows}
        for t in task_rows:
            tasks[t[0]][t[1]] = _task(t)
        return [_run(row, tasks[row[0]]) for row in rows]

    def attempts(self, run_id: str, task_id: str | None = None) -> list[Attempt]:
        """Return the attempts of a run, or of one of its tasks, oldest first.

        Attempts are ordered by start time; attempts that started at the same instant
        are in task order (as listed in :class:`RunStarted`), then by number.

        Raises:
            StoreError: no run has this id, the run has no task ``task_id``, or the
                database cannot be read.
        """
        with self._reading() as cur:
            if task_id is None:
                rows = cur.execute(_SELECT_ATTEMPTS.format(task=""), (run_id,)).fetchall()
                if not rows and cur.execute(_RUN_EXISTS, (run_id,)).fetchone() is None:
                    raise self._unknown_run(run_id)
            else:
                sql = _SELECT_ATTEMPTS.format(task=" AND a.task_id = ?")
                rows = cur.execute(sql, (run_id, task_id)).fetchall()
                if not rows:
                    self._find_task(cur, run_id, task_id)
        return [
            Attempt(r[0], r[1], r[2], STATES[r[3]], from_text(r[4]), from_text_or_none(r[5]), r[6])
            for r in rows
        ]

    def load_result(self, run_id: str, task_id: str) -> bytes | None:
        """Return the pickled value saved for the task, or None."""
        with self._reading() as cur:
            row = cur.execute(_LOAD_RESULT, (run_id, task_id)).fetchone()
        return None if row is None else bytes(row[0])

    def prune_results(self, before: datetime) -> int:
        """Delete the saved values of runs that started before ``before``."""
        cutoff = to_text(before, "prune")
        with self._lock:
            cur = self._cur
            if cur is None:
                raise self._closed()
            try:
                cur.execute("BEGIN IMMEDIATE")
                (count,) = cur.execute(_COUNT_PRUNED, (cutoff,)).fetchone()
                cur.execute(_PRUNE_RESULTS, (cutoff,))
                cur.execute("COMMIT")
            except BaseException as exc:
                self._rollback()
                if isinstance(exc, sqlite3.Error):
                    raise self._failure("write", exc) from exc
                raise
        return int(count)

    # -- housekeeping --------------------------------------------------------------

    def close(self) -> None:
        """Close the connection; later calls raise StoreError. Closing twice is harmless."""
        with self._lock:
            conn, self._conn, self._cur = self._conn, None, None
            if conn is None:
                return
            try:
                conn.close()
            except sqlite3.Error as exc:
                raise self._failure("close", exc) from exc

    def _rollback(self) -> None:
        conn = self._conn
        if conn is not None and conn.in_transaction:
            # The original error matters more than a failed rollback; closing the
            # connection (or the process) discards the transaction anyway.
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")

    def _closed(self) -> StoreError:
        return StoreError(
            f"the store for run history {self.path} is closed; open a new SQLiteStore"
        )

    def _unknown_run(self, run_id: str) -> StoreError:
        return StoreError(
            f"no run {run_id!r} in run history {self.path}; check the id (list_runs() shows "
            "the recorded runs) and record RunStarted before other changes of a run"
        )

    def _failure(self, doing: str, exc: sqlite3.Error) -> StoreError:
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            hint = (
                f"another connection held the write lock for more than {self.timeout:g}s; "
                "retry, or find the process that keeps the database busy"
            )
        else:
            hint = (
                "check that the file is a pipekit history database on a writable disk "
                "with free space"
            )
        return StoreError(f"cannot {doing} run history {self.path}: {exc}; {hint}")


_Row = tuple[Any, ...]


def _task(r: _Row) -> TaskRun:
    """Build a TaskRun from a row of _TASK_COLUMNS."""
    return TaskRun(
        r[1], STATES[r[2]], r[3], None, r[4], from_text_or_none(r[5]), from_text_or_none(r[6])
    )


def _run(r: _Row, tasks: dict[str, TaskRun]) -> Run:
    """Build a Run from a row of _RUN_COLUMNS and its tasks."""
    state: State = STATES[r[2]]
    return Run(
        r[0],
        r[1],
        decode_params(r[3]),
        state,
        from_text(r[7]),
        from_text_or_none(r[8]),
        tasks,
        r[4],
        r[5],
        r[6],
    )
