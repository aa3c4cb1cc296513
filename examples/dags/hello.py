"""The smallest pipekit pipeline: extract, transform and load one day's rows.

Run it with `make demo`, or `python examples/dags/hello.py [YYYY-MM-DD]`.
"""

from __future__ import annotations

import datetime as dt
import sys

import pipekit
from pipekit import dag, task


@task
def extract(ds: dt.date) -> list[int]:
    """Pretend to read the day's rows from a source system."""
    return [ds.day, ds.month, ds.year % 100]


@task(retries=2, retry_delay=0.5)
def transform(rows: list[int]) -> list[int]:
    """Scale every row; retried twice if it fails."""
    return [r * 10 for r in rows]


@task
def load(rows: list[int], ds: dt.date) -> int:
    """Pretend to write the rows, logging through the task's bound logger."""
    pipekit.get_logger().info("rows_loaded", rows=len(rows), ds=str(ds))
    return len(rows)


@task
def report(count: int) -> str:
    """Say what happened, using the run's context."""
    ctx = pipekit.context()
    return f"{ctx.dag} loaded {count} rows for {ctx.params['ds']} (run {ctx.run_id})"


@dag
def hello(ds: dt.date, region: str = "eu") -> None:
    """Extract, transform, load, report."""
    report(load(transform(extract(ds)), ds))


if __name__ == "__main__":
    day = sys.argv[1] if len(sys.argv) > 1 else "2024-01-05"
    run = hello.run(ds=day)
    print()
    print(run.summary())
    print()
    print(run.tasks["report"].result)
    print(f"history: {pipekit.config.home() / 'history.db'}")
