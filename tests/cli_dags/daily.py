"""A daily ETL for the CLI tests: extract -> transform -> load -> report, plus an audit.

Its tasks read environment variables, so that each subprocess decides what happens:
``CLI_CALLS`` names a file every task call appends ``<task> <ds>`` to (to count calls
across processes); ``CLI_BROKEN`` lists ISO dates, comma-separated, on which ``load``
raises ConnectionError; ``CLI_AUDIT_BROKEN`` likewise makes ``audit`` raise LookupError.
"""

from __future__ import annotations

import datetime as dt
import os

from pipekit import dag, task


def _call(name: str, ds: dt.date) -> None:
    path = os.environ.get("CLI_CALLS")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{name} {ds.isoformat()}\n")


def _broken(variable: str, ds: dt.date) -> bool:
    return ds.isoformat() in os.environ.get(variable, "").split(",")


@task
def extract(ds: dt.date) -> list[int]:
    _call("extract", ds)
    return [1, 2, 3]


@task
def transform(rows: list[int], ds: dt.date) -> list[int]:
    _call("transform", ds)
    return [r * 10 for r in rows]


@task
def load(rows: list[int], ds: dt.date) -> int:
    _call("load", ds)
    if _broken("CLI_BROKEN", ds):
        raise ConnectionError(f"warehouse unreachable for {ds.isoformat()}")
    return len(rows)


@task
def report(count: int, ds: dt.date) -> str:
    _call("report", ds)
    return f"{count} rows on {ds.isoformat()}"


@task
def audit(ds: dt.date) -> bool:
    _call("audit", ds)
    if _broken("CLI_AUDIT_BROKEN", ds):
        raise LookupError(f"audit trail missing for {ds.isoformat()}")
    return True


@dag
def daily(ds: dt.date, region: str = "eu") -> None:
    report(load(transform(extract(ds), ds), ds), ds)
    audit(ds)
