"""Daily DAGs that several processes run into one history at once (test_shared_history.py).

``orders`` and ``payments`` are extract -> transform -> load; the first attempt of
``extract`` fails on every third day (a retry is recorded). ``ledger`` is the DAG that
serve loops race for. Every task appends ``dag ds task attempt`` to ``$SHARED_CALLS``
(one short ``O_APPEND`` write per call, so processes never interleave lines).
"""

from __future__ import annotations

import datetime as dt
import os

import pipekit
from pipekit import dag, task


def note(what: str) -> None:
    """Append one line for this call to the calls file named by $SHARED_CALLS."""
    ctx = pipekit.context()
    line = f"{ctx.dag} {ctx.params[what]} {ctx.task} {ctx.attempt}\n".encode()
    fd = os.open(os.environ["SHARED_CALLS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


@task(retries=1, retry_on=ConnectionError)
def extract(ds: dt.date) -> int:
    note("ds")
    if ds.day % 3 == 0 and pipekit.context().attempt == 1:
        raise ConnectionError(f"source unavailable on the first try for {ds}")
    return ds.day


@task
def transform(day: int) -> int:
    note("ds")
    return day * 2


@task
def load(value: int, ds: dt.date) -> str:
    note("ds")
    return f"{ds}:{value}"


@dag(schedule="@daily", start="2024-01-01")
def orders(ds: dt.date) -> None:
    """extract -> transform -> load."""
    load(transform(extract(ds)), ds)


@dag(schedule="@daily", start="2024-01-01")
def payments(ds: dt.date) -> None:
    """The same shape as orders, under another name."""
    load(transform(extract(ds)), ds)


@task
def post(ds: dt.date) -> str:
    note("ds")
    return str(ds)


@dag(schedule="@daily", start="2024-01-01", catchup=True, max_active_runs=2)
def ledger(ds: dt.date) -> None:
    """One task per day; serve loops race to start each day."""
    post(ds)
