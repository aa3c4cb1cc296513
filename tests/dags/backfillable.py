"""Daily DAGs for backfill tests: BROKEN dates make `load` fail; CALLS logs every task call.

``backfillable`` is extract -> transform -> load -> publish plus an independent ``audit``;
on a date in BROKEN, ``load`` raises and ``publish`` is upstream_failed. ``HOOKS`` lets a
test run code inside a task (a barrier, a Ctrl-C) for a given task name. ``always_flaky``
has one task with ``retries=3`` that always fails.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable

from pipekit import dag, task

BROKEN: set[str] = set()
"""ISO dates on which ``load`` raises ConnectionError."""

CALLS: list[tuple[str, str]] = []
"""(task, ISO date) for every task call, in call order."""

HOOKS: dict[str, Callable[[str], None]] = {}
"""Task name to a function called with the ISO date inside that task, before it returns."""

_lock = threading.Lock()


def reset() -> None:
    """Forget broken dates, calls and hooks."""
    BROKEN.clear()
    CALLS.clear()
    HOOKS.clear()


def calls_of(name: str) -> list[str]:
    """The dates on which task ``name`` was called, in call order."""
    with _lock:
        return [day for task_name, day in CALLS if task_name == name]


def _call(name: str, ds: dt.date) -> str:
    day = ds.isoformat()
    with _lock:
        CALLS.append((name, day))
    hook = HOOKS.get(name)
    if hook is not None:
        hook(day)
    return day


@task
def extract(ds: dt.date) -> list[int]:
    _call("extract", ds)
    return [ds.day, 1]


@task
def transform(rows: list[int], ds: dt.date) -> list[int]:
    _call("transform", ds)
    return [r * 10 for r in rows]


@task
def load(rows: list[int], ds: dt.date) -> int:
    day = _call("load", ds)
    if day in BROKEN:
        raise ConnectionError(f"warehouse refused {day}")
    return sum(rows)


@task
def publish(total: int, ds: dt.date) -> str:
    day = _call("publish", ds)
    return f"{day}={total}"


@task
def audit(ds: dt.date, region: str) -> str:
    day = _call("audit", ds)
    return f"{region}:{day}"


@dag
def backfillable(ds: dt.date, region: str = "eu") -> None:
    total = load(transform(extract(ds), ds), ds)
    publish(total, ds)
    audit(ds, region)


@task(retries=3, retry_delay=1)
def flaky_pull(ds: dt.date) -> None:
    _call("flaky_pull", ds)
    raise ConnectionError("source unavailable")


@dag
def always_flaky(ds: dt.date) -> None:
    flaky_pull(ds)
