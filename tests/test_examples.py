"""The examples run: hello, the flights warehouse (a handful of dates), shell + SQL."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import pipekit
from pipekit.stores import MemoryStore

duckdb = pytest.importorskip("duckdb", reason="the examples extra (duckdb) is not installed")

ROOT = Path(__file__).resolve().parents[1]
DAGS = ROOT / "examples" / "dags"
sys.path.insert(0, str(DAGS))

import flights as flights_mod  # noqa: E402 - the examples folder is on sys.path above
import shell_sql as shell_sql_mod  # noqa: E402

DATES = ["2013-02-07", "2013-02-08", "2013-02-09", "2013-07-04"]


def checksum(home: Path) -> list[tuple[Any, ...]]:
    """Row counts and order-independent content hashes of the warehouse tables."""
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return [
            con.execute(f"SELECT count(*), bit_xor(hash(t)) FROM {table} t").fetchone()
            for table in ("flights", "weather", "mart_daily")
        ]
    finally:
        con.close()


@pytest.fixture(scope="module")
def source_counts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    """Flights per date straight from the package's zipped CSV (independent of the DAG)."""
    tmp = tmp_path_factory.mktemp("source")
    with zipfile.ZipFile(flights_mod.source_dir() / "flights.csv.zip") as z:
        z.extract("flights.csv", tmp)
    con = duckdb.connect()
    rows = con.execute(
        "SELECT strftime(make_date(year, month, day), '%Y-%m-%d'), count(*) "
        "FROM read_csv_auto(?) GROUP BY ALL",
        [str(tmp / "flights.csv")],
    ).fetchall()
    return dict(rows)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A temporary warehouse folder, and no broken dates."""
    monkeypatch.delenv("FLIGHTS_BREAK", raising=False)
    yield tmp_path / "flights"


def test_hello_example_runs_as_a_script(tmp_path: Path) -> None:
    """examples/dags/hello.py runs and prints its table and report."""
    env = {**os.environ, "PIPEKIT_HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, str(DAGS / "hello.py"), "2024-02-29"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    )
    assert "hello loaded 3 rows for 2024-02-29" in out.stdout
    assert "report     success" in out.stdout


def test_flights_loads_exactly_each_dates_flights_and_is_idempotent(
    home: Path, source_counts: dict[str, int]
) -> None:
    """Each date's fact rows match the source; running the dates again changes nothing."""
    store = MemoryStore()
    report = pipekit.backfill(
        flights_mod.flights, DATES[0], DATES[2], store=store, progress=False, home=str(home)
    )
    assert report.ok, str(report)
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        loaded = dict(
            con.execute(
                "SELECT strftime(flight_date, '%Y-%m-%d'), count(*) FROM flights GROUP BY 1"
            ).fetchall()
        )
        mismatched = con.execute(
            "SELECT count(*) FROM flights WHERE make_date(year, month, day) <> flight_date"
        ).fetchone()
        mart = con.execute(
            "SELECT strftime(flight_date, '%Y-%m-%d'), sum(flights) FROM mart_daily GROUP BY 1"
        ).fetchall()
    finally:
        con.close()
    assert loaded == {d: source_counts[d] for d in DATES[:3]}
    assert mismatched == (0,)
    assert dict(mart) == loaded
    before = checksum(home)
    again = pipekit.backfill(  # a fresh history: every date runs again, loads replace
        flights_mod.flights,
        DATES[0],
        DATES[2],
        store=MemoryStore(),
        progress=False,
        home=str(home),
    )
    assert again.ok and len(again.succeeded) == 3
    assert checksum(home) == before
    staged = again.runs[again.succeeded[0]].tasks["stage_source"]
    assert staged.state == "skipped" and "output exists" in (staged.error or "")


def test_validation_failure_names_the_date_and_the_rule() -> None:
    """A day whose delays are out of bounds fails validate with the date and the rule."""
    import pandas as pd

    frame = pd.DataFrame(
        {
            "carrier": ["UA"],
            "flight": [1],
            "origin": ["EWR"],
            "time_hour": ["x"],
            "dep_delay": [5000.0],
            "day": [8],
            "month": [2],
        }
    )
    import pendulum

    with pytest.raises(ValueError, match=r"2013-02-08: validation rule failed: departure delays"):
        flights_mod.validate.fn(frame, None, pendulum.Date(2013, 2, 8))


def test_broken_dates_fail_and_a_second_pass_completes_only_them(
    home: Path, monkeypatch: pytest.MonkeyPatch, source_counts: dict[str, int]
) -> None:
    """FLIGHTS_BREAK fails load on exactly those dates; the next pass redoes only them."""
    store = MemoryStore()
    monkeypatch.setenv("FLIGHTS_BREAK", "2013-02-08,2013-07-04")
    first = pipekit.backfill(
        flights_mod.flights,
        "2013-02-07",
        "2013-02-09",
        store=store,
        progress=False,
        home=str(home),
    )
    assert [str(d) for d in first.failed] == ["2013-02-08"]
    assert "load failed" in str(first) and "FLIGHTS_BREAK" in str(first)
    failed_run = first.runs[first.failed[0]]
    assert failed_run.tasks["load"].state == "failed"
    assert failed_run.tasks["build_mart"].state == "upstream_failed"
    monkeypatch.delenv("FLIGHTS_BREAK")
    second = pipekit.backfill(
        flights_mod.flights,
        "2013-02-07",
        "2013-02-09",
        store=store,
        progress=False,
        home=str(home),
    )
    assert second.ok
    assert [str(d) for d in second.succeeded] == ["2013-02-08"]
    assert len(second.skipped) == 2
    rerun = second.runs[second.succeeded[0]]
    assert rerun.id == failed_run.id
    assert rerun.tasks["extract_flights"].attempts == 1  # not executed again
    assert rerun.tasks["load"].attempts == 2
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        (n,) = con.execute(
            "SELECT count(*) FROM flights WHERE flight_date = DATE '2013-02-08'"
        ).fetchone()
    finally:
        con.close()
    assert n == source_counts["2013-02-08"]


def test_shell_and_sql_example_binds_params_and_passes_argument_lists(tmp_path: Path) -> None:
    """The SQL script gets $ds bound; gzip gets a path with a space as one argument."""
    home = tmp_path / "odd dir; rm -rf"
    run = shell_sql_mod.shell_sql.run(ds="2024-01-05", home=str(home), store=MemoryStore())
    gz = Path(run.tasks["compress"].result)
    assert gz.name == "summary 2024-01-05.csv.gz"
    text = gzip.decompress(gz.read_bytes()).decode()
    lines = text.splitlines()
    assert lines[0] == "kind,events,amount"
    assert sum(int(line.split(",")[1]) for line in lines[1:]) == 50
    again = shell_sql_mod.shell_sql.run(ds="2024-01-05", home=str(home), store=MemoryStore())
    assert again.tasks["export"].state == "skipped"
    con = duckdb.connect(str(home / "events.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT sum(events) FROM daily_summary").fetchone() == (50,)
    finally:
        con.close()
