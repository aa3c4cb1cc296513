"""Tasks in an importable module whose globals cannot be pickled (a lock) and hold state.

Worker processes must import this module and call its tasks by reference: pickling
the functions by value would try to pickle the lock (and copy ``LOADED``).
"""

from __future__ import annotations

import os
import threading

from pipekit import dag, task

LOCK = threading.Lock()
"""Module state no pickle can carry."""

LOADED: list[int] = []
"""The ids of the processes that imported this module (each one appends its own)."""
LOADED.append(os.getpid())


@task
def guarded(x: int) -> tuple[int, int]:
    """Return ``x + 1`` under the module's lock, and the process it ran in."""
    with LOCK:
        return os.getpid(), x + 1


@task
def loaded_in() -> list[int]:
    """The module's LOADED list, as the worker running this task sees it (under the lock,
    so this function too can only travel by reference)."""
    with LOCK:
        return list(LOADED)


@dag
def locked() -> None:
    """guarded(1), and loaded_in to show that the worker imported the module itself."""
    guarded(1)
    loaded_in()
