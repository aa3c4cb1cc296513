"""The sql operator on real databases: SQLite and DuckDB files, and PostgreSQL when present.

One contract, run on every database: parameters are bound (never formatted into the
text), dates bind as the database's date type (ISO text in SQLite), and a script's
statements run in one transaction, so a failure leaves nothing half-written.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipekit.declarative import SqlFailed, from_yaml, sqltext
from pipekit.declarative.connections import Connection
from pipekit.stores import MemoryStore
from tests import pg
from tests.declarative.conftest import Write

duckdb = pytest.importorskip("duckdb", reason="the duckdb package is not installed")


@dataclass
class Database:
    """A database under test: the URL a DAG file names, and a way to query it directly."""

    kind: str
    url: str
    query: Callable[[str], list[tuple[Any, ...]]]
    tables: Callable[[], set[str]]


@pytest.fixture(params=["sqlite", "duckdb", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """An empty database of each kind (PostgreSQL: a fresh schema on the tests' server)."""
    kind = request.param
    if kind == "sqlite":
        file = tmp_path / "test.db"

        def q(sql: str) -> list[tuple[Any, ...]]:
            with sqlite3.connect(file) as con:
                return con.execute(sql).fetchall()

        yield Database(
            kind,
            f"sqlite:///{file}",
            q,
            lambda: {r[0] for r in q("SELECT name FROM sqlite_master")},
        )
    elif kind == "duckdb":
        file = tmp_path / "test.duckdb"

        def q(sql: str) -> list[tuple[Any, ...]]:
            with duckdb.connect(str(file)) as con:
                return con.execute(sql).fetchall()

        yield Database(
            kind,
            f"duckdb:///{file}",
            q,
            lambda: {r[0] for r in q("SELECT table_name FROM information_schema.tables")},
        )
    else:
        psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed")
        base = pg.dsn_or_skip()  # one server for the whole test run (tests/pg.py)
        schema = pg.new_schema("yaml")
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(f"CREATE SCHEMA {schema}")
        url = f"{base}?options=-csearch_path%3D{schema}"  # unqualified names land in it

        def q(sql: str) -> list[tuple[Any, ...]]:
            with psycopg.connect(url) as con:
                return con.execute(sql).fetchall()

        listed = f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{schema}'"
        yield Database(kind, url, q, lambda: {r[0] for r in q(listed)})
        pg.drop_schema(schema)


def dag_on(db: Database, write: Write, tasks: str) -> Path:
    """A DAG file whose tasks run on ``db``."""
    return write(
        f"""
        params:
          ds: {{type: date}}
          label: {{type: str, default: plain}}
          n: {{type: int, default: 2}}
        connections: {{db: "{db.url}"}}
        defaults: {{conn: db}}
        tasks:
        {tasks}
        """
    )


def test_params_are_bound_and_dates_bind_as_the_databases_date_type(
    db: Database, write: Write
) -> None:
    """$ds, $label and $n arrive with their types: DATE where there is one, else ISO text."""
    path = dag_on(
        db,
        write,
        """
          load:
            sql: |
              CREATE TABLE events (ds DATE, label TEXT, n INTEGER);
              INSERT INTO events VALUES ($ds, $label, $n);
              CREATE TABLE probe AS SELECT $ds AS d;
        """,
    )
    run = from_yaml(path).run(ds="2024-02-29", label="café", store=MemoryStore())
    assert run.state == "success", run.tasks["load"].error
    ((ds, label, n),) = db.query("SELECT ds, label, n FROM events")
    assert (str(ds), label, n) == ("2024-02-29", "café", 2)
    typeof = {
        "sqlite": "SELECT typeof(d) FROM probe",
        "duckdb": "SELECT typeof(d) FROM probe",
        "postgres": "SELECT pg_typeof(d)::text FROM probe",
    }[db.kind]
    expected = {"sqlite": "text", "duckdb": "DATE", "postgres": "date"}[db.kind]
    assert db.query(typeof) == [(expected,)]


INJECTION = "x'); DROP TABLE events; --"


def test_an_injection_attempt_through_a_param_is_stored_as_text(db: Database, write: Write) -> None:
    """A value that would close the string and drop a table is just a value."""
    path = dag_on(
        db,
        write,
        """
          setup: {sql: "CREATE TABLE events (ds DATE, label TEXT, n INTEGER)"}
          load:
            sql: "INSERT INTO events VALUES ($ds, $label, $n); SELECT 'it''s $label, not a param'"
            depends_on: [setup]
        """,
    )
    run = from_yaml(path).run(ds="2024-01-05", label=INJECTION, store=MemoryStore())
    assert run.state == "success", run.tasks["load"].error
    assert "events" in db.tables()
    assert [r[0] for r in db.query("SELECT label FROM events")] == [INJECTION]


def test_a_failing_statement_rolls_back_the_whole_script(db: Database, write: Write) -> None:
    """SqlFailed names the statement's line; tables and rows written before it are gone."""
    write(
        """
        CREATE TABLE half (x INTEGER);
        INSERT INTO half VALUES (1);

        -- the third statement fails
        INSERT INTO no_such_table VALUES ($n);
        """.replace("        ", ""),
        "sql/half.sql",
    )
    path = dag_on(db, write, "  half: {sql_file: sql/half.sql}")
    run = from_yaml(path).run(ds="2024-01-05", store=MemoryStore(), raise_on_failure=False)
    error = run.tasks["half"].error or ""
    first = error.splitlines()[0]
    assert first.startswith(
        "SqlFailed: SQL of task 'half' failed at sql/half.sql:5 and its transaction was rolled "
        "back (nothing it wrote was kept): "
    ), error
    assert "no_such_table" in first
    assert "half" not in db.tables()


def test_a_failure_in_sql_written_in_the_dag_file_names_the_files_line(
    write: Write,
) -> None:
    """Inline SQL errors point at the DAG file's line of the failing statement."""
    path = write(
        """
        tasks:
          t:
            conn: "sqlite:///t.db"
            sql: |
              CREATE TABLE a (x INTEGER);
              INSERT INTO b VALUES (1);
        """
    )
    run = from_yaml(path).run(store=MemoryStore(), raise_on_failure=False)
    assert f"failed at {path}:6 and its transaction" in (run.tasks["t"].error or "")


def test_for_each_values_bind_like_params(db: Database, write: Write) -> None:
    """$region from for_each is bound per expansion."""
    path = dag_on(
        db,
        write,
        """
          setup: {sql: "CREATE TABLE regions (ds DATE, region TEXT)"}
          fill:
            for_each: {region: [eu, us, "a'b"]}
            sql: "INSERT INTO regions VALUES ($ds, $region)"
            depends_on: [setup]
        """,
    )
    run = from_yaml(path).run(ds="2024-01-05", store=MemoryStore(), executor="sequential")
    assert run.state == "success"
    assert sorted(r[0] for r in db.query("SELECT region FROM regions")) == ["a'b", "eu", "us"]


def test_an_sql_file_is_read_when_the_task_runs(write: Write, tmp_path: Path) -> None:
    """Edits to an sql_file take effect at the next run, without reloading the DAG."""
    script = write("CREATE TABLE IF NOT EXISTS t (v TEXT); INSERT INTO t VALUES ('one');", "x.sql")
    path = write(
        """
        connections: {db: "sqlite:///data/x.db"}
        tasks:
          fill: {sql_file: x.sql, conn: db}
        """
    )
    (tmp_path / "data").mkdir()
    dag = from_yaml(path)
    dag.run(store=MemoryStore())
    script.write_text("INSERT INTO t VALUES ('two');")
    dag.run(store=MemoryStore())
    with sqlite3.connect(tmp_path / "data" / "x.db") as con:  # relative to the DAG file
        assert con.execute("SELECT v FROM t ORDER BY rowid").fetchall() == [("one",), ("two",)]


def test_a_sqlite_trigger_body_stays_one_statement(write: Write, tmp_path: Path) -> None:
    """The ;s inside CREATE TRIGGER ... BEGIN ...; END do not split it."""
    path = write(
        """
        params: {ds: {type: date}}
        tasks:
          t:
            conn: "sqlite:///t.db"
            sql: |
              CREATE TABLE a (ds TEXT);
              CREATE TABLE log (ds TEXT);
              CREATE TRIGGER copy AFTER INSERT ON a BEGIN INSERT INTO log VALUES (new.ds); END;
              INSERT INTO a VALUES ($ds);
        """
    )
    assert from_yaml(path).run(ds="2024-01-05", store=MemoryStore()).state == "success"
    with sqlite3.connect(tmp_path / "t.db") as con:
        assert con.execute("SELECT ds FROM log").fetchall() == [("2024-01-05",)]


def test_a_missing_driver_is_a_clear_error(write: Write, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without psycopg, a postgresql:// task fails saying which extra to install."""
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if not installed
    path = write("tasks:\n  t: {sql: 'SELECT 1', conn: 'postgresql://u@localhost/db'}\n")
    run = from_yaml(path).run(store=MemoryStore(), raise_on_failure=False)
    assert run.tasks["t"].error is not None
    assert run.tasks["t"].error.startswith(
        "PipekitError: a postgresql:// connection needs psycopg: pip install 'pipekit[postgres]'"
    )


def test_connection_urls_resolve_relative_absolute_memory_and_environment(
    tmp_path: Path,
) -> None:
    """:/// is relative to the DAG file, :://// absolute; ${VAR:-x} falls back; passwords hide."""
    folder = tmp_path / "flows"
    assert Connection("a", "sqlite:///w.db", folder).resolve({}) == ("sqlite", str(folder / "w.db"))
    assert Connection("a", "duckdb:////srv/w.duckdb", folder).resolve({}) == (
        "duckdb",
        "/srv/w.duckdb",
    )
    assert Connection("a", "duckdb:///:memory:", folder).resolve({}) == ("duckdb", ":memory:")
    env_url = "duckdb:///${WH:-../wh}/w.duckdb"
    assert Connection("a", env_url, folder).resolve({}) == (
        "duckdb",
        str(folder / "../wh/w.duckdb"),
    )
    assert Connection("a", env_url, folder).resolve({"WH": "/data"}) == ("duckdb", "/data/w.duckdb")
    pg = Connection("pg", "postgresql://etl:${PGPASS}@db.internal/wh", folder)
    assert pg.resolve({"PGPASS": "s3cret"}) == (
        "postgres",
        "postgresql://etl:s3cret@db.internal/wh",
    )
    with pytest.raises(Exception, match="connection 'pg' reads the environment variable 'PGPASS'"):
        pg.resolve({})
    from pipekit.declarative.connections import redact

    assert redact("postgresql://etl:s3cret@db.internal/wh") == "postgresql://etl:***@db.internal/wh"


def test_sql_failed_pickles_for_worker_processes() -> None:
    """SqlFailed crosses process boundaries with its fields."""
    import pickle

    err = pickle.loads(pickle.dumps(SqlFailed("t", "x.sql:3", "Error: boom")))
    assert (err.task, err.where, err.error) == ("t", "x.sql:3", "Error: boom")


# -- reading scripts -----------------------------------------------------------------------


def test_statements_params_and_lines_skip_strings_comments_and_dollar_quotes() -> None:
    """$name outside strings and comments is a param; ; inside them does not split."""
    script = (
        "-- $notparam; in a comment\n"
        "SELECT '$5; off', \"col$x\", a$b FROM t WHERE d = $ds;\n"
        "/* $also; not */ DO $$ BEGIN PERFORM $inner; END $$;\n"
        "\n"
        "INSERT INTO t VALUES ($ds, $region, $1, 'it''s $x')\n"
    )
    statements = sqltext.split(script)
    assert [(s.line, s.params) for s in statements] == [
        (2, ("ds",)),
        (3, ()),
        (5, ("ds", "region")),
    ]
    assert statements[1].text == "DO $$ BEGIN PERFORM $inner; END $$"


def test_pyformat_rewrites_params_and_doubles_percent_signs() -> None:
    """psycopg needs %(name)s placeholders and %% for a literal %."""
    assert (
        sqltext.to_pyformat("SELECT '100%', $ds WHERE x LIKE 'a%' AND y = $n")
        == "SELECT '100%%', %(ds)s WHERE x LIKE 'a%%' AND y = %(n)s"
    )
