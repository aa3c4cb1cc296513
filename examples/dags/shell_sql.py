"""Shell commands and SQL scripts from Python tasks, with parameters passed safely.

SQL-only steps read best as SQL files; shell steps as commands. This DAG keeps both as
they are and calls them from tasks, passing run parameters the safe way:

* the SQL script (``sql/daily_summary.sql``) uses ``$ds``, bound by DuckDB as a query
  parameter: a value can never change what a statement does;
* the shell step is an argument list (``["gzip", "-kf", path]``), never a string for a
  shell to parse: a file name with spaces or ``;`` stays one argument.

Run it: ``pipekit run examples/dags/shell_sql.py -p ds=2024-01-05``.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import random
import subprocess
from pathlib import Path

import pipekit
from pipekit import dag, task

HERE = Path(__file__).resolve().parent
DEFAULT_HOME = os.environ.get("SHELL_SQL_HOME", str(HERE.parent.parent / "demo" / "shell_sql"))


def run_sql_script(con: object, path: Path, params: dict[str, object]) -> None:
    """Run each statement of an SQL file with named parameters bound (``$name``)."""
    text = "\n".join(
        line for line in path.read_text().splitlines() if not line.lstrip().startswith("--")
    )
    for statement in (s.strip() for s in text.split(";")):
        if statement:
            used = {k: v for k, v in params.items() if f"${k}" in statement}
            con.execute(statement, used)  # type: ignore[attr-defined]


@task
def seed(ds: dt.date, home: str) -> int:
    """Write the day's raw events (deterministic per date), replacing any earlier ones."""
    import duckdb

    rng = random.Random(ds.toordinal())
    rows = [(ds, rng.choice(["sale", "refund"]), round(rng.uniform(1, 100), 2)) for _ in range(50)]
    Path(home).mkdir(parents=True, exist_ok=True)
    with duckdb.connect(f"{home}/events.duckdb") as con:
        con.execute("CREATE TABLE IF NOT EXISTS events (ds DATE, kind VARCHAR, amount DOUBLE)")
        con.execute("BEGIN TRANSACTION")
        con.execute("DELETE FROM events WHERE ds = ?", [ds])
        con.executemany("INSERT INTO events VALUES (?, ?, ?)", rows)
        con.execute("COMMIT")
    return len(rows)


@task
def summarize(seeded: int, ds: dt.date, home: str) -> int:
    """Run the SQL script for the day, with $ds bound as a parameter."""
    import duckdb

    with duckdb.connect(f"{home}/events.duckdb") as con:
        con.execute("BEGIN TRANSACTION")
        run_sql_script(con, HERE / "sql" / "daily_summary.sql", {"ds": ds})
        con.execute("COMMIT")
        (rows,) = con.execute("SELECT count(*) FROM daily_summary WHERE ds = ?", [ds]).fetchone()
    return int(rows)


@task(output="{home}/export/summary {ds}.csv")
def export(summarized: int, ds: dt.date, home: str) -> str:
    """Write the day's summary as CSV, renamed into place only when complete."""
    import duckdb

    out = pipekit.context().output
    assert out is not None
    with duckdb.connect(f"{home}/events.duckdb") as con:
        rows = con.execute(
            "SELECT kind, events, amount FROM daily_summary WHERE ds = ? ORDER BY kind", [ds]
        ).fetchall()
    with pipekit.atomic_path(out) as tmp, tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["kind", "events", "amount"])
        writer.writerows(rows)
    return out


@task
def compress(path: str) -> str:
    """Gzip the export with a shell command given as an argument list (no shell parsing)."""
    subprocess.run(["gzip", "-kf", "--", path], check=True, capture_output=True)
    return f"{path}.gz"


@dag
def shell_sql(ds: dt.date, home: str = DEFAULT_HOME) -> None:
    """Seed raw events, summarise them with an SQL script, export, compress."""
    compress(export(summarize(seed(ds, home), ds, home), ds, home))
