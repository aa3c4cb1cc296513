"""Connections of SQL tasks: URLs to SQLite, DuckDB and PostgreSQL, opened per attempt.

A connection is written as a URL, in ``connections:`` under a name or on a task's
``conn:``: ``sqlite:///path.db`` (the standard library's sqlite3), ``duckdb:///path.duckdb``
(the ``duckdb`` package), ``postgresql://user@host/db`` (psycopg, the ``postgres``
extra). A path after ``:///`` is relative to the DAG file's folder; ``:////`` starts an
absolute one; ``:memory:`` is a private in-memory database. ``${VAR}`` reads an
environment variable when the task runs, so a password never sits in the file.

Each database is wrapped in a :class:`Database` with the same five operations, so the
SQL operator runs a script the same way on all of them: in one transaction, with
``$name`` parameters bound by the driver (dates as DATE where the database has one, as
ISO text in SQLite).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pipekit.declarative import substitute
from pipekit.errors import PipekitError

__all__ = ["KINDS", "Connection", "Database", "redact"]

KINDS = {"sqlite": "sqlite", "duckdb": "duckdb", "postgresql": "postgres", "postgres": "postgres"}
"""URL scheme to database kind."""

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def redact(url: str) -> str:
    """The URL with any password replaced by ``***`` (for messages and logs)."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


class Database(Protocol):
    """An open connection the SQL operator drives (one per attempt).

    A conforming object runs one statement at a time with named parameters in the
    ``$name`` style of the script (it rewrites them if its driver needs another
    style), inside a transaction opened by :meth:`begin` and ended by :meth:`commit`
    or :meth:`rollback`.
    """

    kind: str

    def begin(self) -> None:
        """Open the transaction the script runs in."""
        ...

    def execute(self, statement: str, params: Mapping[str, Any]) -> None:
        """Run one statement with the parameters it uses (``$name`` in the text)."""
        ...

    def commit(self) -> None:
        """Make the script's writes permanent."""
        ...

    def rollback(self) -> None:
        """Undo everything since :meth:`begin`."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


def _plain(value: Any) -> Any:
    """Pendulum's Date/DateTime as the standard library's (what every driver adapts)."""
    if isinstance(value, dt.datetime):
        return dt.datetime(
            value.year,
            value.month,
            value.day,
            value.hour,
            value.minute,
            value.second,
            value.microsecond,
            tzinfo=value.tzinfo,
        )
    if isinstance(value, dt.date):
        return dt.date(value.year, value.month, value.day)
    return value


class _SQLite:
    kind = "sqlite"

    def __init__(self, target: str) -> None:
        import sqlite3

        self.con = sqlite3.connect(target, isolation_level=None, timeout=30)

    def begin(self) -> None:
        self.con.execute("BEGIN IMMEDIATE")  # take the write lock now: no upgrade deadlock

    def execute(self, statement: str, params: Mapping[str, Any]) -> None:
        # SQLite has no date type: dates bind as ISO text, which sorts and compares right.
        bound = {k: v.isoformat() if isinstance(v, dt.date) else v for k, v in params.items()}
        self.con.execute(statement, bound)

    def commit(self) -> None:
        self.con.execute("COMMIT")

    def rollback(self) -> None:
        if self.con.in_transaction:
            self.con.execute("ROLLBACK")

    def close(self) -> None:
        self.con.close()


class _DuckDB:
    kind = "duckdb"

    def __init__(self, target: str) -> None:
        try:
            import duckdb
        except ImportError as exc:
            raise PipekitError(
                "a duckdb:// connection needs the duckdb package: pip install 'pipekit[duckdb]'"
            ) from exc
        self.con = duckdb.connect(target)

    def begin(self) -> None:
        self.con.begin()

    def execute(self, statement: str, params: Mapping[str, Any]) -> None:
        self.con.execute(statement, {k: _plain(v) for k, v in params.items()})

    def commit(self) -> None:
        self.con.commit()

    def rollback(self) -> None:
        with contextlib.suppress(Exception):  # nothing to roll back: the failure ended it
            self.con.rollback()

    def close(self) -> None:
        self.con.close()


class _Postgres:
    kind = "postgres"

    def __init__(self, target: str) -> None:
        try:
            import psycopg
        except ImportError as exc:
            raise PipekitError(
                "a postgresql:// connection needs psycopg: pip install 'pipekit[postgres]'"
            ) from exc
        self.con = psycopg.connect(target)  # a transaction opens with the first statement

    def begin(self) -> None:
        """Psycopg opens the transaction itself with the first statement."""

    def execute(self, statement: str, params: Mapping[str, Any]) -> None:
        from pipekit.declarative.sqltext import to_pyformat

        if params:
            self.con.execute(
                to_pyformat(statement),
                {k: _plain(v) for k, v in params.items()},
            )
        else:
            self.con.execute(statement)

    def commit(self) -> None:
        self.con.commit()

    def rollback(self) -> None:
        self.con.rollback()

    def close(self) -> None:
        self.con.close()


@dataclass(frozen=True, slots=True)
class Connection:
    """A connection as the DAG file writes it, opened only when a task runs.

    Attributes:
        name: its name in ``connections:`` (or the URL, for a URL on a task's ``conn:``).
        url: the URL as written (``${VAR}`` not yet read).
        folder: the DAG file's folder, where relative paths start.
    """

    name: str
    url: str
    folder: Path

    def problem(self) -> str | None:
        """What is wrong with the URL as written, or None (``${VAR}`` parts are not read)."""
        try:
            substitute.parse(self.url, fallbacks=True)
        except ValueError as exc:
            return str(exc)
        m = _SCHEME.match(self.url)
        if m is None:
            if self.url.startswith("${"):
                return None  # the whole URL comes from the environment
            return (
                f"{redact(self.url)!r} is not a URL; write sqlite:///path.db, "
                "duckdb:///path.duckdb or postgresql://user@host/db"
            )
        scheme = m.group(1).lower()
        if scheme not in KINDS:
            return (
                f"unknown database {scheme!r} in {redact(self.url)!r}; use one of: "
                "sqlite:///, duckdb:///, postgresql://"
            )
        if KINDS[scheme] != "postgres" and not self.url.startswith(f"{m.group(1)}:///"):
            return (
                f"{redact(self.url)!r}: write {scheme}:///relative/path (from the DAG file's "
                f"folder), {scheme}:////absolute/path or {scheme}:///:memory:"
            )
        return None

    def resolve(self, environ: Mapping[str, str] | None = None) -> tuple[str, str]:
        """Read ``${VAR}`` and return (kind, target): a file path, ``:memory:`` or a URL.

        Raises:
            PipekitError: a variable is unset, or the URL is not one pipekit can open.
        """
        what = f"connection {self.name!r}" if self.name != self.url else "connection"
        url = substitute.expand_env(self.url, os.environ if environ is None else environ, what)
        m = _SCHEME.match(url)
        scheme = m.group(1).lower() if m else ""
        if scheme not in KINDS:
            raise PipekitError(
                f"{what}: {redact(url)!r} is not a sqlite:///, duckdb:/// or postgresql:// URL"
            )
        kind = KINDS[scheme]
        if kind == "postgres":
            return kind, url
        prefix = f"{url[: len(scheme)]}:///"
        if not url.startswith(prefix):
            raise PipekitError(f"{what}: {redact(url)!r} must start with {scheme}:///")
        path = url[len(prefix) :]
        if path in ("", ":memory:"):
            return kind, ":memory:"
        return kind, str(self.folder / path)  # an absolute path stays itself (a / b = b)

    def open(self, environ: Mapping[str, str] | None = None) -> Database:
        """Open the database (the driver is imported here, on first use).

        Raises:
            PipekitError: the URL cannot be resolved, the driver is not installed, or the
                database refuses the connection (the driver's message is kept).
        """
        kind, target = self.resolve(environ)
        opener: dict[str, type[_SQLite] | type[_DuckDB] | type[_Postgres]] = {
            "sqlite": _SQLite,
            "duckdb": _DuckDB,
            "postgres": _Postgres,
        }
        try:
            return opener[kind](target)
        except PipekitError:
            raise
        except Exception as exc:
            shown = redact(target) if kind == "postgres" else target
            raise PipekitError(
                f"cannot open connection {self.name!r} ({kind} {shown}): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
