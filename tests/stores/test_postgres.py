"""What only the PostgreSQL store promises: its schema, upgrades, addressing and connections.

These tests run against the real server of ``tests/pg.py``, each in a schema of its own.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

psycopg = pytest.importorskip("psycopg", reason="the postgres extra (psycopg) is not installed")
from psycopg import sql  # noqa: E402 - after the importorskip

from pipekit.errors import StoreError  # noqa: E402
from pipekit.state import State  # noqa: E402
from pipekit.stores import (  # noqa: E402
    AttemptStarted,
    PostgresStore,
    RunEnded,
    RunStarted,
    open_store,
)
from pipekit.stores.postgres import MIGRATIONS, SCHEMA_VERSION, split_schema  # noqa: E402
from tests import pg  # noqa: E402

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def schema(postgres_dsn: str) -> Iterator[str]:
    """A schema name no other test uses, dropped afterwards."""
    name = pg.new_schema()
    yield name
    pg.drop_schema(name)


def raw(dsn: str, schema: str) -> Any:
    """A plain autocommit connection whose search path is ``schema``."""
    conn = psycopg.connect(dsn, autocommit=True)
    conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
    return conn


def make_old_schema(conn: Any, schema: str, version: int) -> None:
    """Create ``schema`` as pipekit ``version`` left it, by hand (for upgrade tests)."""
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    conn.execute(
        "CREATE TABLE schema_version"
        " (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    )
    for n, migration in enumerate(MIGRATIONS[:version], start=1):
        for statement in migration:
            conn.execute(statement)
        conn.execute("INSERT INTO schema_version (version) VALUES (%s)", [n])


def test_a_new_schema_records_each_version_applied(postgres_dsn: str, schema: str) -> None:
    """Opening an empty database creates the schema and lists versions 1..current."""
    PostgresStore(postgres_dsn, schema=schema).close()

    with raw(postgres_dsn, schema) as conn:
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_version ORDER BY 1")]
        tables = {
            t
            for (t,) in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                [schema],
            )
        }

    assert versions == list(range(1, SCHEMA_VERSION + 1)) == [1, 2, 3]
    # results: unread since version 3, kept for processes of the previous version
    assert tables == {"schema_version", "runs", "task_runs", "attempts", "results", "claims"}


def test_a_version_1_schema_is_upgraded_in_place_keeping_its_runs(
    postgres_dsn: str, schema: str
) -> None:
    """A schema made by hand at version 1 (no claims) is upgraded on open; its runs stay."""
    with raw(postgres_dsn, schema) as conn, conn.transaction():
        make_old_schema(conn, schema, 1)
        conn.execute(
            "INSERT INTO runs (id, dag, state, params, started_at)"
            " VALUES ('old', 'etl', 'success', '{\"n\": 1}', %s)",
            [T0],
        )

    store = PostgresStore(postgres_dsn, schema=schema)
    try:
        old = store.get_run("old")
        assert (old.state, old.params, old.started_at) == (State.SUCCESS, {"n": 1}, T0)
        assert store.claim("etl", "2024-05-01", "me") is True
        store.record([RunStarted("new", "etl", {}, ["a"], T0)])
        assert [r.id for r in store.list_runs()] == ["new", "old"]
    finally:
        store.close()
    with raw(postgres_dsn, schema) as conn:
        assert [v for (v,) in conn.execute("SELECT version FROM schema_version ORDER BY 1")] == [
            1,
            2,
            3,
        ]


def test_a_version_2_schema_keeps_its_saved_values_in_the_task_rows(
    postgres_dsn: str, schema: str
) -> None:
    """Upgrading to version 3 moves each saved value into its task's row; rows without stay None."""
    with raw(postgres_dsn, schema) as conn, conn.transaction():
        make_old_schema(conn, schema, 2)
        conn.execute(
            "INSERT INTO runs (id, dag, state, params, started_at)"
            " VALUES ('old', 'etl', 'success', '{}', %s)",
            [T0],
        )
        conn.execute(
            "INSERT INTO task_runs (run_id, task_id, position, state)"
            " VALUES ('old', 'a', 0, 'success'), ('old', 'b', 1, 'success')"
        )
        conn.execute("INSERT INTO results VALUES ('old', 'a', %s)", [b"saved-a"])

    store = PostgresStore(postgres_dsn, schema=schema)
    try:
        assert store.load_result("old", "a") == b"saved-a"
        assert store.load_result("old", "b") is None
        assert list(store.get_run("old").tasks) == ["a", "b"]
    finally:
        store.close()


def test_a_schema_from_a_newer_pipekit_is_refused(postgres_dsn: str, schema: str) -> None:
    """A schema whose version is newer raises StoreError naming the database and version."""
    PostgresStore(postgres_dsn, schema=schema).close()
    newer = SCHEMA_VERSION + 1
    with raw(postgres_dsn, schema) as conn:
        conn.execute("INSERT INTO schema_version (version) VALUES (%s)", [newer])

    with pytest.raises(StoreError, match=f"schema version {newer}") as info:
        PostgresStore(postgres_dsn, schema=schema)

    assert "upgrade pipekit" in str(info.value)
    assert schema in str(info.value)


def test_processes_opening_a_new_schema_together_create_it_once(
    postgres_dsn: str, schema: str
) -> None:
    """Four stores opening one new schema at once all succeed; each version is applied once."""
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []
    stores: list[PostgresStore] = []

    def open_it() -> None:
        try:
            barrier.wait()
            stores.append(PostgresStore(postgres_dsn, schema=schema))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    pool = [threading.Thread(target=open_it) for _ in range(4)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    for s in stores:
        s.close()

    assert errors == []
    with raw(postgres_dsn, schema) as conn:
        assert conn.execute("SELECT count(*) FROM schema_version").fetchone() == (SCHEMA_VERSION,)


def test_schemas_keep_independent_histories_and_urls_can_name_one(
    postgres_dsn: str, schema: str
) -> None:
    """Two schemas in one database never see each other's runs; ?schema= picks one by URL."""
    other = pg.new_schema()
    first = open_store(f"{postgres_dsn}?schema={schema}")
    second = PostgresStore(postgres_dsn, schema=other)
    try:
        assert isinstance(first, PostgresStore)
        assert first.schema == schema
        first.record([RunStarted("r1", "etl", {}, ["a"], T0)])
        assert second.list_runs() == []
        assert [r.id for r in first.list_runs()] == ["r1"]
    finally:
        first.close()
        second.close()
        pg.drop_schema(other)


def test_split_schema_leaves_other_dsns_alone() -> None:
    """Only a postgresql:// URL's schema= is taken off; other parameters and DSNs stay."""
    assert split_schema("postgresql://u@h/db?schema=s&sslmode=require") == (
        "postgresql://u@h/db?sslmode=require",
        "s",
    )
    assert split_schema("postgres://h/db?schema=s") == ("postgres://h/db", "s")
    assert split_schema("host=h dbname=db") == ("host=h dbname=db", None)
    assert split_schema("postgresql://h/db") == ("postgresql://h/db", None)


def test_params_and_times_are_queryable_as_json_and_timestamptz(
    postgres_dsn: str, schema: str
) -> None:
    """Params are a json column and times are timestamptz, so SQL can query them directly."""
    store = PostgresStore(postgres_dsn, schema=schema)
    try:
        store.record([RunStarted("r1", "etl", {"ds": "2024-05-01", "n": 2}, ["a"], T0)])
        store.record([RunEnded("r1", State.SUCCESS, T0.replace(hour=13))])
    finally:
        store.close()
    with raw(postgres_dsn, schema) as conn:
        row = conn.execute(
            "SELECT params->>'ds', (params->>'n')::int, ended_at - started_at FROM runs"
        ).fetchone()
    assert row is not None
    assert row[:2] == ("2024-05-01", 2)
    assert row[2].total_seconds() == 3600


def test_an_unreachable_server_raises_store_error_without_the_password() -> None:
    """Connecting to a port nobody listens on fails fast with StoreError; no password shown."""
    port = pg._free_port()
    dsn = f"postgresql://alice:s3cret@127.0.0.1:{port}/db"
    with pytest.raises(StoreError, match="cannot connect to run history") as info:
        PostgresStore(dsn, connect_timeout=2)
    assert "s3cret" not in str(info.value)
    assert f"postgresql://alice@127.0.0.1:{port}/db" in str(info.value)
    assert "running and reachable" in str(info.value)


def test_repr_names_database_and_schema_but_not_the_password(
    postgres_dsn: str, schema: str
) -> None:
    """repr() shows where the history is, never the credentials."""
    secret = postgres_dsn.replace("postgres@", "postgres:hunter2@")  # trust auth ignores it
    store = PostgresStore(secret, schema=schema)
    try:
        assert "hunter2" not in repr(store)
        assert repr(store).startswith("PostgresStore('postgresql://postgres@127.0.0.1:")
        assert f"schema={schema!r}" in repr(store)
    finally:
        store.close()


def test_a_connection_the_server_dropped_is_replaced(postgres_dsn: str, schema: str) -> None:
    """After the server ends the store's session, the next call reconnects and succeeds."""
    store = PostgresStore(postgres_dsn, schema=schema)
    try:
        store.record([RunStarted("r1", "etl", {}, ["a"], T0)])
        with psycopg.connect(postgres_dsn, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'pipekit' AND pid <> pg_backend_pid()"
            )
        store.record([AttemptStarted("r1", "a", 1, T0)])
        assert store.get_run("r1").tasks["a"].attempts == 1
    finally:
        store.close()


def test_a_closed_store_says_so(postgres_dsn: str, schema: str) -> None:
    """Calls after close() raise StoreError that names the store as closed."""
    store = PostgresStore(postgres_dsn, schema=schema)
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.list_runs()
