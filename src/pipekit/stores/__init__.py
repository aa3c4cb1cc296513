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
    RunEnded,
    RunResumed,
    RunStarted,
    Store,
    TaskStateSet,
)
from pipekit.stores.memory import MemoryStore
from pipekit.stores.sqlite import SQLiteStore

__all__ = [
    "AttemptEnded",
    "AttemptStarted",
    "Change",
    "MemoryStore",
    "RunEnded",
    "RunResumed",
    "RunStarted",
    "SQLiteStore",
    "Store",
    "TaskStateSet",
]
