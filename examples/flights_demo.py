"""`make demo`: backfill all of 2013 into the flights warehouse, then show the mart.

Usage: python examples/flights_demo.py [START END]   (default 2013-01-01 2013-12-31)
The warehouse and the run history live under demo/ (FLIGHTS_HOME, PIPEKIT_HOME).
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

WORST_DAYS = """
SELECT flight_date, sum(flights) AS flights,
       round(sum(mean_dep_delay * flights) / sum(flights), 1) AS mean_dep_delay,
       sum(cancelled) AS cancelled,
       round(max(mean_precip), 3) AS max_precip
FROM mart_daily GROUP BY flight_date ORDER BY mean_dep_delay DESC LIMIT 5
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
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
