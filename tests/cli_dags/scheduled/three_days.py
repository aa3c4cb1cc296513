"""A daily DAG with catchup that starts three days before today (UTC): a pass runs three dates.

Its start is computed when the file loads, so the number of due intervals (the three
days before today) does not depend on the day the tests run. ``count`` raises on the
ISO dates listed, comma-separated, in ``CLI_BROKEN``.
"""

from __future__ import annotations

import datetime as dt
import os

from pipekit import dag, task

START = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=3)


@task
def count(ds: dt.date) -> int:
    if ds.isoformat() in os.environ.get("CLI_BROKEN", "").split(","):
        raise ValueError(f"no rows for {ds.isoformat()}")
    return ds.day


@dag(schedule="@daily", start=START.isoformat())
def three_days(ds: dt.date) -> None:
    count(ds)
