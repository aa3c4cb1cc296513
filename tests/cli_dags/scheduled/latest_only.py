"""A daily DAG that started long ago without catchup: a pass runs only yesterday (UTC)."""

from __future__ import annotations

import datetime as dt

from pipekit import dag, task


@task
def stamp(ds: dt.date) -> str:
    return ds.isoformat()


@dag(schedule="@daily", start="2024-01-01", catchup=False)
def latest_only(ds: dt.date) -> None:
    stamp(ds)
