"""Run-history stores: where pipekit records what its runs did, and reads it back.

The run loop talks only to the :class:`Store` protocol, handing it *changes*
(:class:`RunStarted`, :class:`AttemptStarted`, :class:`AttemptEnded`,
:class:`TaskStateSet`, :class:`RunEnded`). Pick an implementation by passing one:

* :class:`MemoryStore`: history lives as long as the process (tests, notebooks);
* :class:`SQLiteStore`: history in one SQLite file, shared by threads and processes.

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
from pipekit.stores.sqlite import SQLiteStore


def open_store(where: str) -> Store:
    """Open a store named by a URL or a path.

    ``"sqlite:///path/history.db"`` (or a plain path) opens a :class:`SQLiteStore`;
    ``"memory://"`` a new :class:`MemoryStore`.

    Raises:
        StoreError: an unknown URL scheme (the message lists the known ones).
    """
    from pipekit.errors import StoreError

    if where.startswith("memory://"):
        return MemoryStore()
    if where.startswith("sqlite:///"):  # sqlite:///relative.db, sqlite:////abs/path.db
        return SQLiteStore(where[len("sqlite:///") :])
    if "://" in where:
        scheme = where.split("://", 1)[0]
        raise StoreError(
            f"store {where!r}: unknown scheme {scheme!r}; use sqlite:///path/history.db, "
            "memory://, or a path to a SQLite file"
        )
    return SQLiteStore(where)


__all__ = [
    "AttemptEnded",
    "AttemptStarted",
    "Change",
    "MemoryStore",
    "ResultSaved",
    "RunEnded",
    "RunResumed",
    "RunStarted",
    "SQLiteStore",
    "Store",
    "TaskStateSet",
    "open_store",
]
