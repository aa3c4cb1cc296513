"""The issue's example DAG, importable by module name (for the processes executor and re-runs)."""

from __future__ import annotations

import datetime as dt

from pipekit import dag, task


@task
def extract(ds: dt.date) -> list[int]:
    return [1, 2, 3]


@task(retries=2, retry_delay=0.5)
def transform(rows: list[int]) -> list[int]:
    return [r * 10 for r in rows]


@task
def load(rows: list[int], ds: dt.date) -> int:
    return len(rows)


@dag
def etl(ds: dt.date, region: str = "eu") -> None:
    load(transform(extract(ds)), ds)
