"""The Python step of flights_marts.yml: export a day's carrier mart as CSV.

A plain function: the DAG file's ``python: marts:to_csv`` calls it with the run
parameters it names (``ds``) and the task's ``args:`` (``top``). It knows nothing of
pipekit, so it can be tested and reused as it is.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
from pathlib import Path

import pipekit

HERE = Path(__file__).resolve().parent


def to_csv(ds: dt.date, top: int = 5, home: str | None = None) -> str:
    """Write the day's carriers (most delayed first) to marts/carriers_<ds>.csv; return it.

    ``home`` is the flights example's folder: $FLIGHTS_HOME, else demo/flights.
    """
    import duckdb

    home = home or os.environ.get("FLIGHTS_HOME", str(HERE.parent.parent / "demo" / "flights"))
    out = Path(home) / "marts" / f"carriers_{ds}.csv"
    with duckdb.connect(f"{home}/warehouse.duckdb") as con:
        rows = con.execute(
            "SELECT carrier, flights, cancelled, mean_dep_delay, on_time_share"
            " FROM mart_delays_by_carrier WHERE flight_date = ?"
            " ORDER BY mean_dep_delay DESC NULLS LAST",
            [ds],
        ).fetchall()
    with pipekit.atomic_path(out) as tmp, tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["carrier", "flights", "cancelled", "mean_dep_delay", "on_time_share"])
        writer.writerows(rows)
    worst = ", ".join(f"{r[0]} ({r[3]} min)" for r in rows[:top])
    pipekit.get_logger().info("marts_exported", path=str(out), most_delayed=worst)
    return str(out)
