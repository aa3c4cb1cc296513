"""SQLite histories written by the first pipekit versions open, upgrade and work.

The first version-1 pipekit wrote ``runs``, ``task_runs`` and ``attempts`` but no
``results`` table (a later version-1 pipekit created it when opening a file); such a
file, possibly already upgraded to version 2 (claims), must still open. The tables
are built here with the DDL those versions ran, not with :data:`MIGRATIONS`.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipekit.state import State
from pipekit.stores import (
    AttemptEnded,
    AttemptStarted,
    ResultSaved,
    RunEnded,
    RunResumed,
    RunStarted,
    SQLiteStore,
)
from pipekit.stores.sqlite import SCHEMA_VERSION

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

FIRST_VERSION_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE runs (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    dag TEXT NOT NULL,
    state TEXT NOT NULL,
    params TEXT NOT NULL,
    module TEXT,
    file TEXT,
    error TEXT,
    started_at TEXT NOT NULL,
    ended_at TEXT
);
CREATE INDEX runs_by_start ON runs (started_at);
CREATE INDEX runs_by_dag ON runs (dag, started_at);
CREATE INDEX runs_by_state ON runs (state, started_at);
CREATE TABLE task_runs (
    run_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    started_at TEXT,
    ended_at TEXT,
    PRIMARY KEY (run_id, task_id)
) WITHOUT ROWID;
CREATE TABLE attempts (
    run_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    number INTEGER NOT NULL,
    state TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    error TEXT,
    PRIMARY KEY (run_id, task_id, number)
) WITHOUT ROWID;
INSERT INTO runs (id, dag, state, params, started_at, ended_at)
    VALUES ('old', 'etl', 'success', '{"n": 1}',
            '2024-05-01T12:00:00.000000+00:00', '2024-05-01T12:00:02.000000+00:00');
INSERT INTO task_runs VALUES ('old', 'a', 0, 'success', 1, NULL,
    '2024-05-01T12:00:01.000000+00:00', '2024-05-01T12:00:02.000000+00:00');
INSERT INTO attempts VALUES ('old', 'a', 1, 'success',
    '2024-05-01T12:00:01.000000+00:00', '2024-05-01T12:00:02.000000+00:00', NULL);
"""
"""A file as the first version-1 pipekit left it: no results table, one finished run."""

CLAIMS = """
CREATE TABLE claims (
    dag TEXT NOT NULL,
    key TEXT NOT NULL,
    owner TEXT NOT NULL,
    claimed_at TEXT NOT NULL,
    PRIMARY KEY (dag, key)
) WITHOUT ROWID;
"""
"""What version 2 added (a version-1 file without results upgraded to 2 still has none)."""


def at(seconds: float) -> datetime:
    """Return the instant ``seconds`` after T0."""
    return T0 + timedelta(seconds=seconds)


def make_file(path: Path, version: int) -> None:
    """Write a history without a results table, at schema ``version`` (1 or 2)."""
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript(FIRST_VERSION_1 + (CLAIMS if version == 2 else ""))
        conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(version),))
        conn.commit()


@pytest.mark.parametrize("version", [1, 2])
def test_a_history_without_a_results_table_opens_and_works(tmp_path: Path, version: int) -> None:
    """Opening upgrades it (results table made); recording, re-running and pruning work."""
    path = tmp_path / "history.db"
    make_file(path, version)

    store = SQLiteStore(path)
    try:
        old = store.get_run("old")
        assert (old.state, old.params, old.tasks["a"].attempts) == (State.SUCCESS, {"n": 1}, 1)
        assert [a.state for a in store.attempts("old")] == [State.SUCCESS]
        assert store.load_result("old", "a") is None

        store.record(
            [
                RunStarted("new", "etl", {}, ["a"], at(10)),
                AttemptStarted("new", "a", 1, at(11)),
                AttemptEnded("new", "a", 1, State.SUCCESS, at(12), State.SUCCESS),
                ResultSaved("new", "a", b"value"),
                RunEnded("new", State.SUCCESS, at(13)),
            ]
        )
        assert store.load_result("new", "a") == b"value"
        store.record([RunResumed("old", at(20), ["a"])])
        assert store.get_run("old").state == State.RUNNING
        assert store.claim("etl", "2024-05-01", "me") is True

        assert store.prune_results(at(100)) == 1
        assert store.load_result("new", "a") is None
    finally:
        store.close()
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT value FROM meta").fetchall() == [(str(SCHEMA_VERSION),)]
        assert conn.execute("SELECT count(*) FROM results").fetchone() == (0,)
