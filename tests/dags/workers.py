"""DAGs that report where their tasks ran: which process, which thread.

``in_process`` returns the worker's pid (for the processes executor, importable by
reference); ``two_threads`` runs two independent tasks that record their thread.
``holds_until_recorded`` waits inside its task until the history shows it running.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time

from pipekit import context, dag, task
from pipekit.stores import SQLiteStore

THREADS: list[threading.Thread] = []
"""The thread objects that ran ``two_threads``' tasks (kept alive, so each is distinct)."""

HISTORY: list[str] = []
"""The SQLite file ``holds_until_recorded`` reads (set by the test)."""


@task
def pid(ds: dt.date) -> int:
    return os.getpid()


@dag
def in_process(ds: dt.date) -> None:
    pid(ds)


@task
def note_thread(ds: dt.date, side: str) -> str:
    THREADS.append(threading.current_thread())
    time.sleep(0.005)  # both tasks are running at once: each gets a worker
    return side


@dag
def two_threads(ds: dt.date) -> None:
    note_thread(ds, "left")
    note_thread(ds, "right")


@task
def wait_for_own_record() -> float:
    """Poll a second connection until this attempt is recorded as running; return the wait."""
    ctx = context()
    reader = SQLiteStore(HISTORY[0])
    began = time.monotonic()
    try:
        while time.monotonic() - began < 10:
            runs = [r for r in reader.list_runs() if r.id == ctx.run_id]
            if runs and runs[0].tasks[ctx.task].state == "running":
                return time.monotonic() - began
            time.sleep(0.002)
    finally:
        reader.close()
    raise TimeoutError("the running attempt was never committed while the task ran")


@dag
def holds_until_recorded() -> None:
    wait_for_own_record()
