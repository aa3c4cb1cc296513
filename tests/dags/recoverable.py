"""A DAG for re-run tests: calls go to $RECOVER_LOG; $RECOVER_BREAK names the tasks that fail."""

from __future__ import annotations

import datetime as dt
import os

from pipekit import dag, task


def _note(name: str, ds: object) -> None:
    log = os.environ.get("RECOVER_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"{name} {ds}\n")
    if name in os.environ.get("RECOVER_BREAK", "").split(","):
        raise ConnectionError(f"{name} cannot reach the warehouse")


@task
def extract(ds: dt.date) -> list[int]:
    _note("extract", ds)
    return [ds.day, 2, 3]


@task
def transform(rows: list[int], ds: dt.date) -> list[int]:
    _note("transform", ds)
    return [r * 10 for r in rows]


@task
def load(rows: list[int], ds: dt.date) -> int:
    _note("load", ds)
    return sum(rows)


@task
def audit(ds: dt.date) -> str:
    _note("audit", ds)
    return f"audited {ds}"


@dag
def recoverable(ds: dt.date, region: str = "eu") -> None:
    load(transform(extract(ds), ds), ds)
    audit(ds)
