"""The ``sql`` / ``sql_file`` operator: run a script on a connection, parameters bound.

Parameters are written ``$name`` in the SQL and handed to the driver as query
parameters, never formatted into the text, so a value can never change what a
statement does. The statements run in order in one transaction: if one fails, the
ones before it are rolled back and the task fails with
:class:`pipekit.declarative.SqlFailed`, naming the statement's line. An ``sql_file`` is
read when the task runs, so edits take effect at the next run (the scheduler included).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipekit.declarative import sqltext
from pipekit.declarative.connections import Connection
from pipekit.declarative.errors import SqlFailed
from pipekit.errors import ContextError, PipekitError

__all__ = ["Sql"]


@dataclass(frozen=True, slots=True)
class Sql:
    """An SQL task's script, called by the run loop with the parameters the script uses.

    Attributes:
        connection: where it runs.
        origin: where the script comes from, for messages (``sql/daily.sql``, or
            ``flights.yml:12`` for SQL written in the DAG file).
        text: the script written in the DAG file (``sql:``), or None.
        path: the absolute path of the ``sql_file``, or None.
        constants: the task's ``for_each`` values, bound like parameters.
        line_offset: lines before the script in its origin (for ``sql:`` in the file).
    """

    connection: Connection
    origin: str
    text: str | None = None
    path: str | None = None
    constants: Mapping[str, Any] = field(default_factory=dict)
    line_offset: int = 0

    def script(self, task: str) -> str:
        """The SQL to run (an ``sql_file`` is read now).

        Raises:
            PipekitError: the file cannot be read.
        """
        if self.text is not None:
            return self.text
        assert self.path is not None
        try:
            return Path(self.path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PipekitError(f"task {task!r}: cannot read {self.origin!r}: {exc}") from exc

    def __call__(self, **params: Any) -> None:
        """Run every statement in one transaction.

        Raises:
            SqlFailed: a statement failed (the transaction was rolled back).
            PipekitError: the script uses an unknown ``$name``, or the connection cannot
                be opened.
        """
        import pipekit

        try:
            task = pipekit.context().task
        except ContextError:
            task = "sql"
        log = pipekit.get_logger()
        script = self.script(task)
        statements = sqltext.split(script)
        values = {**params, **self.constants}
        unknown = [p for st in statements for p in st.params if p not in values]
        if unknown:
            raise PipekitError(
                f"task {task!r}: {self.origin} uses ${unknown[0]}, which is not a run "
                f"parameter; known: {', '.join(sorted(values)) or 'none'}"
            )
        db = self.connection.open()
        if db.kind == "sqlite":
            statements = sqltext.join_sqlite(script, statements)
        try:
            db.begin()
            for st in statements:
                try:
                    db.execute(st.text, {p: values[p] for p in st.params})
                except Exception as exc:
                    where = f"{self.origin}:{st.line + self.line_offset}"
                    raise SqlFailed(task, where, f"{type(exc).__name__}: {exc}") from exc
            db.commit()
        except BaseException:
            db.rollback()
            raise
        finally:
            db.close()
        log.info("sql_done", connection=self.connection.name, statements=len(statements))
