"""The operators of DAG files: what an ``sh``, ``sql``/``sql_file`` or ``python`` task does.

Each operator is the function of an ordinary :class:`pipekit.Task`, so the run loop,
every executor, retries, timeouts and re-runs treat it like any Python task:

* :class:`~pipekit.declarative.operators.sh.Shell` runs a command (``sh``);
* :class:`~pipekit.declarative.operators.sql.Sql` runs a script on a connection
  (``sql``, ``sql_file``);
* a ``python`` task's function is the user's own function, found by
  :func:`~pipekit.declarative.operators.python.resolve`.
"""

from __future__ import annotations

from pipekit.declarative.operators.sh import Shell
from pipekit.declarative.operators.sql import Sql

__all__ = ["Shell", "Sql"]
