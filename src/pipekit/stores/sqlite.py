"""A run-history store in one SQLite file, shared by threads and processes.

SQLite needs no server and keeps a project's history in one file. The store opens
the file in WAL mode, so readers never wait for the writer, and writes each
:meth:`SQLiteStore.record` call as one ``BEGIN IMMEDIATE`` transaction: the call
takes the write lock before reading anything (waiting up to ``timeout`` seconds for
other writers, in this process or others), so concurrent writers queue instead of
failing, and a process killed at any moment leaves the file as of its last
committed call. ``synchronous=NORMAL`` trades durability of the last few commits on
power loss (never on a process crash) for commits that do not wait for the disk.

The file carries its schema version in a ``meta`` table. Opening a file of an older
version upgrades it in place (in one transaction); a file written by a newer pipekit
is refused rather than misread. The statements and the store logic are shared with
the PostgreSQL store (:mod:`pipekit.stores._sql`).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Final

from pipekit.errors import StoreError
from pipekit.stores._codec import from_text, from_text_or_none, to_text
from pipekit.stores._sql import SQLStore, check_version, statements

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "SQLiteStore"]

MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    # Version 1: runs, their tasks and attempts, and saved results.
    (
        # seq keeps the order runs were recorded in, the tie-breaker of list_runs().
        """CREATE TABLE runs (
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
        "CREATE INDEX runs_by_start ON runs (started_at)",
        "CREATE INDEX runs_by_dag ON runs (dag, started_at)",
        "CREATE INDEX runs_by_state ON runs (state, started_at)",
        """CREATE TABLE task_runs (
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
        """CREATE TABLE attempts (
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
        """CREATE TABLE results (
            run_id TEXT NOT NULL,
            task_id TEXT NOT NULL,
            data BLOB NOT NULL,
            PRIMARY KEY (run_id, task_id)
        ) WITHOUT ROWID""",
    ),
    # Version 2: the scheduler's claims on intervals (one row per DAG and interval).
    (
        """CREATE TABLE claims (
            dag TEXT NOT NULL,
            key TEXT NOT NULL,
            owner TEXT NOT NULL,
            claimed_at TEXT NOT NULL,
            PRIMARY KEY (dag, key)
        ) WITHOUT ROWID""",
    ),
    # Version 3: a saved value lives in its task's row, written by the same update as
    # the task's success (one statement per task fewer than a table of its own).
    (
        "ALTER TABLE task_runs ADD COLUMN result BLOB",
        # Files of the first version-1 pipekit have no results table (it was created
        # later, when opening a file, and only then); make it so the copy below and
        # prune_results(), which empties it for older processes, can read it.
        """CREATE TABLE IF NOT EXISTS results (
            run_id TEXT NOT NULL,
            task_id TEXT NOT NULL,
            data BLOB NOT NULL,
            PRIMARY KEY (run_id, task_id)
        ) WITHOUT ROWID""",
        # Only the rows that have a value are rewritten (UPDATE ... FROM needs 3.33).
        """UPDATE task_runs SET result = (
            SELECT data FROM results AS r
            WHERE r.run_id = task_runs.run_id AND r.task_id = task_runs.task_id
        ) WHERE EXISTS (
            SELECT 1 FROM results AS r
            WHERE r.run_id = task_runs.run_id AND r.task_id = task_runs.task_id
        )""",
        # The results table stays, unread: a pipekit of the previous version still
        # running on this history keeps writing there instead of failing (its values
        # are not seen by this version's re-runs, which then run those tasks again).
    ),
)
"""The statements that bring a file from version ``n`` to ``n + 1``, at index ``n``."""

SCHEMA_VERSION: Final = len(MIGRATIONS)
"""The schema this code writes; older files are upgraded, newer ones refused."""

_STATEMENTS: Final = statements("?")


class SQLiteStore(SQLStore):
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

    sql = _STATEMENTS
    _duplicate = sqlite3.IntegrityError

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 30.0) -> None:
        """Open (creating or upgrading if needed) the history database at ``path``.

        Raises:
            StoreError: the file cannot be created or opened, is not a pipekit history
                database, or was written by a newer version of pipekit.
        """
        self.path = Path(path)
        """The database file."""
        self.where = str(self.path)
        """The file, as messages name it."""
        self.timeout = timeout
        """Seconds a write waits for another writer before giving up."""
        self._lock = threading.Lock()
        self._stamp, self._time, self._time_or_none = to_text, from_text, from_text_or_none
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

    def __repr__(self) -> str:
        """Show the database file."""
        return f"SQLiteStore({str(self.path)!r})"

    def _prepare(self, conn: sqlite3.Connection) -> None:
        """Set the connection up and create, upgrade or check the schema, in one transaction.

        Two processes opening a new (or old) file at once serialise on ``BEGIN
        IMMEDIATE``; the second finds the schema the first created or upgraded.
        """
        self._enter_wal(conn)
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            found = 0 if row is None else check_version(row[0], self.where, SCHEMA_VERSION)
            if found < SCHEMA_VERSION:
                for migration in MIGRATIONS[found:]:
                    for statement in migration:
                        conn.execute(statement)
                conn.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _enter_wal(self, conn: sqlite3.Connection) -> None:
        """Switch the file to WAL mode, waiting up to ``timeout`` for other openers.

        SQLite answers "database is locked" at once, without waiting as ``timeout``
        asks, while another process writes a new file's first transaction (two CLI
        commands started together on a new history met it); so this tries again, a
        little later each time, until ``timeout`` has passed.
        """
        deadline = time.monotonic() + self.timeout
        pause = 0.002
        shortened = False
        try:
            while True:
                try:
                    conn.execute("PRAGMA journal_mode = WAL")
                    return
                except sqlite3.OperationalError as exc:
                    left = deadline - time.monotonic()
                    if "locked" not in str(exc) or left <= 0:
                        raise
                time.sleep(min(pause, left))
                pause = min(pause * 2, 0.1)
                # A try that does wait for the lock waits no longer than what is left.
                left_ms = max(1, int((deadline - time.monotonic()) * 1000))
                conn.execute(f"PRAGMA busy_timeout = {left_ms}")
                shortened = True
        finally:
            if shortened:
                conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Cursor]:
        """Hold the lock and one ``BEGIN IMMEDIATE`` transaction, committed at the end."""
        with self._lock:
            cur = self._cur
            if cur is None:
                raise self._closed()
            try:
                cur.execute("BEGIN IMMEDIATE")
                yield cur
                cur.execute("COMMIT")
            except BaseException as exc:
                self._rollback()
                if isinstance(exc, sqlite3.Error):
                    raise self._failure("write", exc) from exc
                raise

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
