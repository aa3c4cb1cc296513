"""A daily DAG whose task prints a line and then takes 0.3 s, served in a subprocess.

The SIGTERM test starts ``serve`` on this file, waits for the ``started`` line, and
signals the process while the run is going.
"""

from __future__ import annotations

import datetime as dt
import time

from pipekit import dag, task


@task
def nap(ds: dt.date) -> str:
    print(f"started {ds.isoformat()}", flush=True)
    time.sleep(0.3)
    return ds.isoformat()


@dag(schedule="@daily", start="2024-01-01", catchup=False)
def sleepy(ds: dt.date) -> None:
    nap(ds)
