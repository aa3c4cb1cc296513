"""Plain functions that the fixture DAG files call through ``python:`` tasks."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3


def note(line: str) -> None:
    """Append a line to the file named by $YAML_CALLS (how calls are counted across processes)."""
    with open(os.environ["YAML_CALLS"], "a") as f:
        f.write(line + "\n")


def summarize(ds: dt.date, region: str, scale: int) -> int:
    """Count the day's zones in the report database, times ``scale``."""
    note(f"summarize {ds}")
    with sqlite3.connect(os.environ["YAML_DB"]) as con:
        (n,) = con.execute("SELECT count(*) FROM zones WHERE ds = ?", [ds.isoformat()]).fetchone()
    return int(n) * scale


def describe(ds: dt.date, label: str, zone: str = "-") -> str:
    """Return what it was called with (types included), for the python operator's tests."""
    return f"{type(ds).__name__} {ds} {label} {zone}"


def needs_a_secret(ds: dt.date, token: str) -> str:
    """Needs an argument that is neither a run parameter nor given by args:."""
    return token


def explode(ds: dt.date) -> None:
    """Fail, for tests of a failing python task."""
    raise ValueError(f"no data for {ds}")
