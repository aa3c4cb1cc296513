"""A run-history store in PostgreSQL, shared by schedulers and backfills on many machines.

SQLite keeps one machine's history; when several schedulers, backfills and workers on
different machines write one history, a server database is the right home. This store
keeps the same tables as :class:`~pipekit.stores.SQLiteStore`, applies changes with the
same statements (:mod:`pipekit.stores._sql`), and answers every read the same way, so
code moves between the two by changing the store's URL.

What it guarantees:

* Each :meth:`PostgresStore.record` call is one transaction (``READ COMMITTED``):
  all of its changes or none, whatever happens to the process or the connection. Every
  change updates rows by key, so writers in many processes never lose each other's
  updates; reads run in one ``REPEATABLE READ`` snapshot, so a run and its tasks are
  read consistently while others write.
* :meth:`PostgresStore.claim` inserts into a table whose primary key is
  ``(dag, key)`` with ``ON CONFLICT DO NOTHING``: of two schedulers claiming one
  interval, the database lets exactly one insert the row.
* The tables live in their own PostgreSQL schema (``pipekit`` unless told otherwise),
  with the version in a ``schema_version`` table. Opening the store creates the schema,
  or upgrades an older one in place, in one transaction under an advisory lock (so
  processes starting together do it once); a schema written by a newer pipekit is
  refused.

One connection serves the threads of a process, guarded by a lock; a connection the
server dropped is replaced on the next call (the call that saw it fail raises
:class:`~pipekit.StoreError`). Errors of psycopg surface as StoreError naming the
database (never its password).
"""

from __future__ import annotations

import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from pipekit.errors import StoreError
from pipekit.stores._codec import to_utc
from pipekit.stores._sql import SQLStore, check_version, statements

if TYPE_CHECKING:
    import psycopg

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "PostgresStore"]

MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    # Version 1: runs, their tasks and attempts, and saved results.
    (
        # seq keeps the order runs were recorded in, the tie-breaker of list_runs().
        """CREATE TABLE runs (
            seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            dag TEXT NOT NULL,
            state TEXT NOT NULL,
            params JSON NOT NULL,
            module TEXT,
            file TEXT,
            error TEXT,
            started_at TIMESTAMPTZ NOT NULL,
            ended_at TIMESTAMPTZ
        )""",
        "CREATE INDEX runs_by_start ON runs (started_at, seq)",
        "CREATE INDEX runs_by_dag ON runs (dag, started_at, seq)",
        "CREATE INDEX runs_by_state ON runs (state, started_at, seq)",
        """CREATE TABLE task_runs (
            run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            task_id TEXT NOT NULL,
            position INTEGER NOT NULL,
            state TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            started_at TIMESTAMPTZ,
            ended_at TIMESTAMPTZ,
            PRIMARY KEY (run_id, task_id)
        )""",
        """CREATE TABLE attempts (
            run_id TEXT NOT NULL,
            task_id TEXT NOT NULL,
            number INTEGER NOT NULL,
            state TEXT NOT NULL,
            started_at TIMESTAMPTZ NOT NULL,
            ended_at TIMESTAMPTZ,
            error TEXT,
            PRIMARY KEY (run_id, task_id, number),
            FOREIGN KEY (run_id, task_id) REFERENCES task_runs ON DELETE CASCADE
        )""",
        # Values of succeeded tasks, pickled, for re-runs (written with the task's success).
        """CREATE TABLE results (
            run_id TEXT NOT NULL,
            task_id TEXT NOT NULL,
            data BYTEA NOT NULL,
            PRIMARY KEY (run_id, task_id),
            FOREIGN KEY (run_id, task_id) REFERENCES task_runs ON DELETE CASCADE
        )""",
    ),
    # Version 2: the scheduler's claims on intervals (one row per DAG and interval).
    (
        """CREATE TABLE claims (
            dag TEXT NOT NULL,
            key TEXT NOT NULL,
            owner TEXT NOT NULL,
            claimed_at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (dag, key)
        )""",
    ),
    # Version 3: a saved value lives in its task's row, written by the same update as
    # the task's success (one statement per task fewer than a table of its own).
    (
        "ALTER TABLE task_runs ADD COLUMN result BYTEA",
        """UPDATE task_runs AS t SET result = r.data FROM results AS r
            WHERE r.run_id = t.run_id AND r.task_id = t.task_id""",
        # The results table stays, unread: a pipekit of the previous version still
        # running on this history keeps writing there instead of failing (its values
        # are not seen by this version's re-runs, which then run those tasks again).
    ),
)
"""The statements that bring a schema from version ``n`` to ``n + 1``, at index ``n``."""

SCHEMA_VERSION: Final = len(MIGRATIONS)
"""The schema this code writes; older schemas are upgraded, newer ones refused."""

_STATEMENTS: Final = statements(
    "%s", params="params::text", params_in="?::json", greatest="GREATEST"
)

_VERSION_TABLE: Final = """CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)"""


def _same(value: datetime) -> datetime:
    """Return ``value``: psycopg reads timestamptz as aware datetimes in UTC (the session's)."""
    return value


def _same_or_none(value: datetime | None) -> datetime | None:
    """Return ``value``, a datetime as psycopg reads it, or None."""
    return value


def split_schema(dsn: str) -> tuple[str, str | None]:
    """Split a ``schema=`` query parameter off a ``postgresql://`` URL.

    libpq does not know ``schema``; pipekit reads it so that a URL alone can say where
    the tables are (``postgresql://db.example/etl?schema=team_a``).

    Example:
        >>> split_schema("postgresql://u@h/db?schema=etl&sslmode=require")
        ('postgresql://u@h/db?sslmode=require', 'etl')
    """
    parts = urllib.parse.urlsplit(dsn)
    if parts.scheme not in ("postgresql", "postgres") or "schema" not in parts.query:
        return dsn, None
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None)
    rest = urllib.parse.urlencode([(k, v) for k, v in query if k != "schema"])
    return urllib.parse.urlunsplit(parts._replace(query=rest)), schema


def describe(dsn: str) -> str:
    """The database a DSN names, for messages: ``postgresql://user@host:port/db``, no password."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        info = conninfo_to_dict(dsn)
    except Exception:  # a malformed DSN: connecting reports it; name nothing secret here
        return "postgresql://(unparsable DSN)"
    user = f"{info['user']}@" if info.get("user") else ""
    host = str(info.get("host") or "localhost")
    port = f":{info['port']}" if info.get("port") else ""
    return f"postgresql://{user}{host}{port}/{info.get('dbname') or ''}"


class PostgresStore(SQLStore):
    """Keeps run history in a PostgreSQL database that many processes and machines share.

    Needs ``psycopg`` 3 (``pip install 'pipekit[postgres]'``). See the module docstring
    for the transaction, claim and schema guarantees.

    Args:
        dsn: a libpq connection string or URL (``postgresql://user:pw@host:5432/db``);
            a URL may carry ``?schema=name``.
        schema: the PostgreSQL schema holding pipekit's tables (default ``pipekit``, or
            the URL's ``schema=``); created if missing, so one database can hold
            several independent histories.
        connect_timeout: seconds to wait for the server when connecting.

    Example:
        >>> store = PostgresStore("postgresql://pipekit@db.internal/pipekit")  # doctest: +SKIP
        >>> pipekit.configure(store="postgresql://pipekit@db.internal/pipekit")  # doctest: +SKIP
    """

    def __init__(
        self, dsn: str, *, schema: str | None = None, connect_timeout: float = 10.0
    ) -> None:
        """Connect, then create or upgrade the schema if needed.

        Raises:
            StoreError: psycopg is not installed, the server cannot be reached, the
                schema holds tables that are not a pipekit history, or it was written
                by a newer version of pipekit.
        """
        try:
            import psycopg
            from psycopg import errors
        except ImportError as exc:
            raise StoreError(
                "PostgresStore needs psycopg 3: pip install 'pipekit[postgres]'"
            ) from exc
        self._dsn, from_url = split_schema(dsn)
        self.schema = schema or from_url or "pipekit"
        """The PostgreSQL schema that holds the tables."""
        self.connect_timeout = connect_timeout
        """Seconds to wait for the server when (re)connecting."""
        self.where = f"{describe(self._dsn)} (schema {self.schema})"
        """The database and schema, as messages name them (no password)."""
        self.sql = _STATEMENTS
        self._duplicate = errors.UniqueViolation
        self._stamp, self._time, self._time_or_none = to_utc, _same, _same_or_none
        self._lock = threading.Lock()
        self._closed = False
        self._conn: psycopg.Connection[Any] | None = None
        self._cur: psycopg.Cursor[Any] | None = None
        with self._lock:
            conn = self._connect()
            try:
                self._prepare(conn)
            except BaseException as exc:
                conn.close()
                if isinstance(exc, psycopg.Error):
                    raise self._failure("open", exc) from exc
                raise
            self._conn, self._cur = conn, conn.cursor()

    def __repr__(self) -> str:
        """Show the database and schema, without the password."""
        return f"PostgresStore({describe(self._dsn)!r}, schema={self.schema!r})"

    # -- connecting ----------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        """A new autocommit connection whose search path is the store's schema, zone UTC."""
        import psycopg
        from psycopg import sql

        try:
            conn = psycopg.connect(
                self._dsn,
                autocommit=True,
                connect_timeout=max(1, round(self.connect_timeout)),
                application_name="pipekit",
            )
        except psycopg.Error as exc:
            raise self._failure("connect to", exc) from exc
        try:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
            conn.execute("SET TimeZone TO 'UTC'")
        except psycopg.Error as exc:
            conn.close()
            raise self._failure("connect to", exc) from exc
        return conn

    def _prepare(self, conn: psycopg.Connection[Any]) -> None:
        """Create, upgrade or check the schema in one transaction, one process at a time."""
        from psycopg import sql

        with conn.transaction():
            # Processes opening a new database together queue here; the later ones
            # find the schema made (or upgraded) by the first.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"pipekit:{self.schema}"])
            conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
            )
            conn.execute(_VERSION_TABLE)
            row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
            found = 0 if row is None or row[0] is None else row[0]
            if found:
                check_version(found, self.where, SCHEMA_VERSION)
            for version in range(found, SCHEMA_VERSION):
                for statement in MIGRATIONS[version]:
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version) VALUES (%s)", [version + 1])

    def _cursor(self) -> psycopg.Cursor[Any]:
        """The cursor of a live connection, reconnecting if the server dropped the last one."""
        if self._closed:
            raise StoreError(f"the store for run history {self.where} is closed; open a new one")
        conn, cur = self._conn, self._cur
        if conn is None or cur is None or conn.closed or conn.broken:
            if conn is not None:
                with suppress(Exception):
                    conn.close()
            self._conn = self._cur = None
            conn = self._connect()
            self._conn, self._cur = conn, conn.cursor()
            return self._cur
        return cur

    # -- transactions --------------------------------------------------------------

    @contextmanager
    def _writing(self) -> Iterator[psycopg.Cursor[Any]]:
        """Hold the lock and one read-committed transaction, committed at the end."""
        with self._lock, self._transaction("BEGIN", "write") as cur:
            yield cur

    @contextmanager
    def _reading(self) -> Iterator[psycopg.Cursor[Any]]:
        """Hold the lock and one repeatable-read snapshot, so queries agree with each other."""
        begin = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
        with self._lock, self._transaction(begin, "read") as cur:
            yield cur

    @contextmanager
    def _transaction(self, begin: str, doing: str) -> Iterator[psycopg.Cursor[Any]]:
        import psycopg

        cur = self._cursor()
        try:
            try:
                cur.execute(begin)
            except psycopg.OperationalError:
                # The server dropped the connection while it was idle (a restart, an
                # idle timeout): nothing was sent yet, so reconnecting is safe.
                if self._conn is None or not (self._conn.broken or self._conn.closed):
                    raise
                cur = self._cursor()
                cur.execute(begin)
            yield cur
            cur.execute("COMMIT")
        except BaseException as exc:
            self._rollback()
            if isinstance(exc, psycopg.Error):
                raise self._failure(doing, exc) from exc
            raise

    def _rollback(self) -> None:
        import psycopg

        conn = self._conn
        if conn is None or conn.closed:
            return
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            # The original error matters more than a failed rollback; a broken
            # connection is replaced on the next call, and the server discards its
            # transaction anyway.
            with suppress(psycopg.Error):
                conn.execute("ROLLBACK")

    # -- housekeeping --------------------------------------------------------------

    def close(self) -> None:
        """Close the connection; later calls raise StoreError. Closing twice is harmless."""
        with self._lock:
            self._closed = True
            conn, self._conn, self._cur = self._conn, None, None
        if conn is not None:
            with suppress(Exception):
                conn.close()

    def _failure(self, doing: str, exc: Exception) -> StoreError:
        import psycopg

        if isinstance(exc, psycopg.OperationalError):
            hint = (
                "check that the server is running and reachable, and the DSN's host, port, "
                "user and password"
            )
        else:
            hint = (
                f"check that schema {self.schema!r} holds a pipekit history and that the "
                "user may write to it"
            )
        message = " ".join(str(exc).split())  # libpq's messages span lines
        return StoreError(f"cannot {doing} run history {self.where}: {message}; {hint}")
