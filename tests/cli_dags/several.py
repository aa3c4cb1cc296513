"""Two DAGs in one file: a DAGREF naming the file alone is ambiguous.

``alpha`` is scheduled daily with a required ``ds``; ``diamond`` is a -> (b, c) -> d
with an optional ``n``.
"""

from __future__ import annotations

import datetime as dt

from pipekit import dag, task


@task
def fetch(ds: dt.date) -> str:
    return ds.isoformat()


@dag(schedule="@daily", start="2024-01-01")
def alpha(ds: dt.date) -> None:
    fetch(ds)


@task
def a(n: int) -> int:
    return n


@task
def b(x: int) -> int:
    return x + 1


@task
def c(x: int) -> int:
    return x * 2


@task
def d(x: int, y: int) -> int:
    return x + y


@dag
def diamond(n: int = 3) -> None:
    top = a(n)
    d(b(top), c(top))
