"""Scheduled DAGs for serve tests; every task call is logged in CALLS.

Each DAG has one task, ``record``, that appends ``(dag name, ISO logical date)`` to
CALLS and then calls ``HOOKS[dag name]`` (if set) with the ISO date, so that a test can
run code inside a run: measure concurrency, wait on an event, stop the scheduler.
All start on 2024-01-01 and run daily unless their name says otherwise.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

from pipekit import dag, task

CALLS: list[tuple[str, str]] = []
"""(DAG name, ISO logical date) for every task call, in call order."""

HOOKS: dict[str, Callable[[str], None]] = {}
"""DAG name to a function called inside its task with the ISO logical date."""

_lock = threading.Lock()


def reset() -> None:
    """Forget calls and hooks."""
    with _lock:
        CALLS.clear()
    HOOKS.clear()


def calls_of(name: str) -> list[str]:
    """The logical dates DAG ``name`` ran for, in call order."""
    with _lock:
        return [day for dag_name, day in CALLS if dag_name == name]


@task
def record(dag_name: str, ds: Any) -> str:
    day = ds.isoformat()
    with _lock:
        CALLS.append((dag_name, day))
    hook = HOOKS.get(dag_name)
    if hook is not None:
        hook(day)
    return day


@dag(schedule="@daily", start="2024-01-01")
def nightly(ds: dt.date) -> None:
    record("nightly", ds)


@dag(schedule="@daily", start="2024-01-01", catchup=False)
def latest_interval(ds: dt.date) -> None:
    record("latest_interval", ds)


@dag(schedule="@daily", start="2024-01-01", max_active_runs=2)
def pair(ds: dt.date) -> None:
    record("pair", ds)


@dag(schedule="@daily", start="2024-01-01", tz="Europe/Berlin")
def berlin(ds: dt.date) -> None:
    record("berlin", ds)


@dag(schedule="@hourly", start="2024-10-27", tz="Europe/Berlin")
def berlin_hourly(ds: dt.datetime) -> None:
    record("berlin_hourly", ds)


@dag
def manual(ds: dt.date) -> None:
    record("manual", ds)
