"""Run as a script in its own session: a backfill on the processes executor receives a
terminal-like Ctrl-C (SIGINT to the whole process group) while date 1's task runs.

Usage: python ctrl_c_backfill.py WORKDIR. Prints one line per date: date, state.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import sys
import threading
import time
from pathlib import Path

from pipekit import backfill, dag, task
from pipekit.stores import MemoryStore


@task
def hold(ds: dt.date, workdir: str) -> str:
    """Say it started, then wait (up to 10 s) until the script releases it."""
    Path(workdir, f"started-{ds}").touch()
    release = Path(workdir, "release")
    for _ in range(1000):
        if release.exists():
            return str(ds)
        time.sleep(0.01)
    return "never released"


@dag
def held(ds: dt.date, workdir: str) -> None:
    hold(ds, workdir)


def interrupt_when_started(workdir: str) -> None:
    started = Path(workdir, "started-2024-01-01")
    for _ in range(1000):
        if started.exists():
            break
        time.sleep(0.01)
    os.killpg(os.getpgrp(), signal.SIGINT)  # as a terminal's Ctrl-C: the workers get it too
    time.sleep(0.05)
    Path(workdir, "release").touch()


if __name__ == "__main__":
    workdir = sys.argv[1]
    threading.Thread(target=interrupt_when_started, args=(workdir,), daemon=True).start()
    report = backfill(
        held,
        "2024-01-01",
        "2024-01-03",
        workdir=workdir,
        executor="processes",
        store=MemoryStore(),
        progress=False,
    )
    for day, outcome in report.dates.items():
        run = outcome.run
        print(day, run.tasks["hold"].state if run else outcome.action, flush=True)
