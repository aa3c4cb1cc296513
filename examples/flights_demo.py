"""`make demo`: backfill all of 2013 into the flights warehouse, then build the YAML marts.

Usage: python examples/flights_demo.py [START END]   (default 2013-01-01 2013-12-31)
The warehouse and the run history live under demo/ (FLIGHTS_HOME, PIPEKIT_HOME).

Ingestion is a Python DAG (examples/dags/flights.py); the reporting marts on top of it
are a declarative one (examples/dags/flights_marts.yml, SQL files and one Python
function), backfilled over the same dates on the same engine.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import structlog

sys.path.insert(0, str(Path(__file__).resolve().parent / "dags"))

from flights import DEFAULT_HOME, connect, flights

import pipekit

DAGS = Path(__file__).resolve().parent / "dags"

WORST_DAYS = """
SELECT flight_date, sum(flights) AS flights,
       round(sum(mean_dep_delay * flights) / sum(flights), 1) AS mean_dep_delay,
       sum(cancelled) AS cancelled,
       round(max(mean_precip), 3) AS max_precip
FROM mart_daily GROUP BY flight_date ORDER BY mean_dep_delay DESC LIMIT 5
"""

CARRIERS = """
SELECT carrier, sum(flights) AS flights,
       round(sum(mean_dep_delay * flights) / sum(flights), 1) AS mean_dep_delay,
       round(sum(on_time_share * flights) / sum(flights), 3) AS on_time_share
FROM mart_delays_by_carrier WHERE mean_dep_delay IS NOT NULL
GROUP BY carrier ORDER BY mean_dep_delay DESC LIMIT 5
"""


def main() -> int:
    """Backfill the range, print the report and the five worst days for delays."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    start, end = (sys.argv[1], sys.argv[2]) if len(sys.argv) == 3 else ("2013-01-01", "2013-12-31")
    began = time.perf_counter()
    report = pipekit.backfill(flights, start, end, progress=True)
    took = time.perf_counter() - began
    print()
    print(report)
    print(f"({len(report.dates)} dates in {took:.1f}s)")
    con = connect(f"{DEFAULT_HOME}/warehouse.duckdb")
    try:
        print("\nThe five worst days for departure delays (mart_daily):")
        rows = con.execute(WORST_DAYS).fetchall()
        print(f"{'date':<12}{'flights':>8}{'mean delay':>12}{'cancelled':>11}{'max precip':>12}")
        for day, n, delay, cancelled, precip in rows:
            print(f"{day!s:<12}{n:>8}{delay:>12}{cancelled:>11}{precip:>12}")
        (facts,) = con.execute("SELECT count(*) FROM flights").fetchone()
        print(f"\nwarehouse: {DEFAULT_HOME}/warehouse.duckdb ({facts} flights)")
    finally:
        con.close()
    marts_ok = build_marts(start, end)
    return 0 if report.ok and marts_ok else 1


def build_marts(start: str, end: str) -> bool:
    """Backfill the YAML marts DAG over the same dates; print the most delayed carriers."""
    marts = pipekit.from_yaml(DAGS / "flights_marts.yml")
    print(f"\nBuilding the marts of {DAGS / 'flights_marts.yml'} (a YAML DAG):")
    began = time.perf_counter()
    report = pipekit.backfill(marts, start, end, max_active_runs=4, retries=True, progress=True)
    took = time.perf_counter() - began
    print()
    print(report)
    print(f"({len(report.dates)} dates in {took:.1f}s)")
    con = connect(f"{DEFAULT_HOME}/warehouse.duckdb")
    try:
        print("\nThe five most delayed carriers (mart_delays_by_carrier):")
        print(f"{'carrier':<9}{'flights':>9}{'mean delay':>12}{'on time':>9}")
        for carrier, n, delay, on_time in con.execute(CARRIERS).fetchall():
            print(f"{carrier:<9}{n:>9}{delay:>12}{on_time:>9}")
    finally:
        con.close()
    print(f"CSV exports: {DEFAULT_HOME}/marts/")
    return report.ok


if __name__ == "__main__":
    sys.exit(main())
