"""Run-history stores: where pipekit records what its runs did, and reads it back.

The run loop talks only to the :class:`Store` protocol, handing it *changes*
(:class:`RunStarted`, :class:`AttemptStarted`, :class:`AttemptEnded`,
:class:`TaskStateSet`, :class:`RunEnded`, ...). Pick an implementation by passing one,
or name it by URL (:func:`open_store`):

* :class:`MemoryStore` (``memory://``): history lives as long as the process (tests,
  notebooks);
* :class:`SQLiteStore` (``sqlite:///path/history.db``): history in one SQLite file,
  shared by the threads and processes of one machine;
* :class:`PostgresStore` (``postgresql://user@host/db``): history in a PostgreSQL
  database shared by schedulers and backfills on many machines (needs
  ``pipekit[postgres]``; psycopg is imported only when one is opened).

Example:
    >>> from pipekit.stores import MemoryStore, Store
    >>> isinstance(MemoryStore(), Store)
    True
"""

from pipekit.stores.base import (
    AttemptEnded,
    AttemptStarted,
    Change,
    ResultSaved,
    RunEnded,
    RunResumed,
    RunStarted,
    Store,
    TaskStateSet,
)
from pipekit.stores.memory import MemoryStore
from pipekit.stores.postgres import PostgresStore
from pipekit.stores.sqlite import SQLiteStore


def open_store(where: str) -> Store:
    """Open a store named by a URL or a path.

    * ``"memory://"``: a new :class:`MemoryStore`;
    * ``"sqlite:///relative/history.db"``, ``"sqlite:////abs/history.db"`` or a plain
      path: a :class:`SQLiteStore`;
    * ``"postgresql://user:password@host:5432/db"`` (or ``postgres://``), optionally
      with ``?schema=name``: a :class:`PostgresStore`.

    Raises:
        StoreError: an unknown URL scheme (the message lists the known ones), or the
            store cannot be opened.

    Example:
        >>> open_store("memory://")
        MemoryStore(<0 runs>)
    """
    from pipekit.errors import StoreError

    if where.startswith("memory://"):
        return MemoryStore()
    if where.startswith("sqlite:///"):  # sqlite:///relative.db, sqlite:////abs/path.db
        return SQLiteStore(where[len("sqlite:///") :])
    if where.startswith(("postgresql://", "postgres://")):
        return PostgresStore(where)
    if where.startswith("sqlite://"):  # two slashes: the path would lose its first part
        raise StoreError(
            f"store URL {where!r} needs three slashes before a relative path "
            f"(sqlite:///{where[len('sqlite://') :]}) and four before an absolute one "
            "(sqlite:////var/lib/history.db)"
        )
    if "://" in where:
        scheme = where.split("://", 1)[0]
        raise StoreError(
            f"store URL {scheme}://...: unknown scheme {scheme!r}; use "
            "sqlite:///path/history.db, postgresql://user@host/db, memory://, "
            "or a path to a SQLite file"
        )
    return SQLiteStore(where)


__all__ = [
    "AttemptEnded",
    "AttemptStarted",
    "Change",
    "MemoryStore",
    "PostgresStore",
    "ResultSaved",
    "RunEnded",
    "RunResumed",
    "RunStarted",
    "SQLiteStore",
    "Store",
    "TaskStateSet",
    "open_store",
]
