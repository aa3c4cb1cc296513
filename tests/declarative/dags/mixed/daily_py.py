"""A Python DAG beside a YAML one: listed and served together."""

from __future__ import annotations

import datetime as dt

from pipekit import dag, task


@task
def hello(ds: dt.date) -> str:
    return f"hello {ds}"


@dag(schedule="@daily", start="2024-01-01")
def mixed_python(ds: dt.date) -> None:
    hello(ds)
