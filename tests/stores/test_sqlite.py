"""What only the SQLite store promises: its file format, and safety across processes and crashes."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack, closing, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipekit.errors import StoreError
from pipekit.state import State
from pipekit.stores import AttemptEnded, AttemptStarted, RunEnded, RunStarted, SQLiteStore
from pipekit.stores.sqlite import MIGRATIONS, SCHEMA_VERSION

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

posix_only = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")

CHILD_PRELUDE = """
import sys
from datetime import UTC, datetime, timedelta
from pipekit.state import State
from pipekit.stores import (
    AttemptEnded, AttemptStarted, RunEnded, RunStarted, SQLiteStore, TaskStateSet,
)
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
"""


@contextmanager
def child(code: str, *args: str) -> Iterator[subprocess.Popen[str]]:
    """Run ``code`` (after CHILD_PRELUDE) in a new interpreter, killed if it outlives 10 s."""
    argv = [sys.executable, "-c", CHILD_PRELUDE + code, *args]
    pipes = subprocess.PIPE
    with subprocess.Popen(argv, stdin=pipes, stdout=pipes, stderr=pipes, text=True) as proc:
        guard = threading.Timer(10.0, proc.kill)
        guard.start()
        try:
            yield proc
        finally:
            guard.cancel()
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def read_line(proc: subprocess.Popen[str]) -> str:
    """Return the child's next stdout line, failing with its stderr if it exited instead."""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        assert proc.stderr is not None
        pytest.fail(f"child exited early:\n{proc.stderr.read()}")
    return line.strip()


def kill(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the child and reap it."""
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL


def raw(path: Path) -> closing[sqlite3.Connection]:
    """A plain sqlite3 connection to inspect the file behind the store's back."""
    return closing(sqlite3.connect(path))


def test_the_file_uses_wal_journaling(tmp_path: Path) -> None:
    """A new history file is in WAL mode, so readers do not block the writer."""
    path = tmp_path / "history.db"
    SQLiteStore(path).close()

    with raw(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_the_connection_is_tuned_for_concurrent_writers(tmp_path: Path) -> None:
    """The store's connection uses synchronous=NORMAL and the busy timeout it was given."""
    store = SQLiteStore(tmp_path / "history.db", timeout=12.5)
    try:
        conn = store._conn
        assert conn is not None
        assert conn.execute("PRAGMA synchronous").fetchone() == (1,)
        assert conn.execute("PRAGMA busy_timeout").fetchone() == (12500,)
    finally:
        store.close()


def make_old_file(conn: sqlite3.Connection, version: int) -> None:
    """Give an empty file the tables pipekit ``version`` wrote, by hand (for upgrade tests)."""
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    for migration in MIGRATIONS[:version]:
        for statement in migration:
            conn.execute(statement)
    conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(version),))


def test_the_schema_version_is_stored(tmp_path: Path) -> None:
    """The meta table records schema_version as the version this code writes."""
    path = tmp_path / "history.db"
    SQLiteStore(path).close()

    with raw(path) as conn:
        rows = conn.execute("SELECT key, value FROM meta").fetchall()

    assert rows == [("schema_version", str(SCHEMA_VERSION))] == [("schema_version", "3")]


def test_a_version_1_file_is_upgraded_in_place_keeping_its_history(tmp_path: Path) -> None:
    """A file written by the version-1 schema (no claims) gains the claims table, runs kept."""
    path = tmp_path / "history.db"
    with raw(path) as conn, conn:
        make_old_file(conn, 1)
        conn.execute(
            "INSERT INTO runs (id, dag, state, params, started_at)"
            " VALUES ('old', 'etl', 'success', '{\"n\": 1}', '2024-05-01T12:00:00.000000+00:00')"
        )

    store = SQLiteStore(path)
    try:
        assert store.get_run("old").params == {"n": 1}
        assert store.claim("etl", "2024-05-01", "me") is True
        store.record([RunStarted("new", "etl", {}, ["a"], T0)])
    finally:
        store.close()
    with raw(path) as conn:
        assert conn.execute("SELECT value FROM meta").fetchall() == [(str(SCHEMA_VERSION),)]
        assert conn.execute("SELECT dag, key, owner FROM claims").fetchall() == [
            ("etl", "2024-05-01", "me")
        ]


def test_a_version_2_file_keeps_its_saved_values_in_the_task_rows(tmp_path: Path) -> None:
    """Upgrading to version 3 moves each saved value into its task's row; rows without stay None."""
    path = tmp_path / "history.db"
    with raw(path) as conn, conn:
        make_old_file(conn, 2)
        conn.execute(
            "INSERT INTO runs (id, dag, state, params, started_at)"
            " VALUES ('old', 'etl', 'success', '{}', '2024-05-01T12:00:00.000000+00:00')"
        )
        conn.execute(
            "INSERT INTO task_runs (run_id, task_id, position, state)"
            " VALUES ('old', 'a', 0, 'success'), ('old', 'b', 1, 'success')"
        )
        conn.execute("INSERT INTO results VALUES ('old', 'a', ?)", (b"saved-a",))

    store = SQLiteStore(path)
    try:
        assert store.load_result("old", "a") == b"saved-a"
        assert store.load_result("old", "b") is None
        assert list(store.get_run("old").tasks) == ["a", "b"]
    finally:
        store.close()
    # A pipekit of version 2 still running on the file keeps saving values without error.
    with raw(path) as conn, conn:
        conn.execute(
            "INSERT INTO results (run_id, task_id, data) VALUES ('old', 'b', ?)"
            " ON CONFLICT (run_id, task_id) DO UPDATE SET data = excluded.data",
            (b"from-v2",),
        )
    # Pruning also empties the old table of the runs it prunes.
    store = SQLiteStore(path)
    try:
        assert store.prune_results(datetime(2025, 1, 1, tzinfo=UTC)) == 1
        assert store.load_result("old", "a") is None
    finally:
        store.close()
    with raw(path) as conn:
        assert conn.execute("SELECT count(*) FROM results").fetchone() == (0,)


def test_stores_on_one_file_racing_for_claims_give_each_interval_one_winner(
    tmp_path: Path,
) -> None:
    """Four store objects on one file, claiming from four threads: one winner per interval."""
    path = tmp_path / "history.db"
    stores = [SQLiteStore(path) for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    wins: list[str] = []

    def race(store: SQLiteStore, name: str) -> None:
        barrier.wait()
        wins.extend(k for k in map(str, range(20)) if store.claim("etl", k, name))

    pool = [threading.Thread(target=race, args=(s, f"s{i}")) for i, s in enumerate(stores)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    for s in stores:
        s.close()
    assert sorted(wins, key=int) == [str(k) for k in range(20)]


def test_a_file_from_a_newer_pipekit_is_refused(tmp_path: Path) -> None:
    """Opening a file whose schema is newer raises StoreError naming path and version."""
    path = tmp_path / "history.db"
    SQLiteStore(path).close()
    newer = SCHEMA_VERSION + 1
    with raw(path) as conn, conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(newer),))

    with pytest.raises(StoreError, match=f"schema version {newer}") as info:
        SQLiteStore(path)

    assert str(path) in str(info.value)
    assert "upgrade pipekit" in str(info.value)


def test_a_file_with_a_garbled_schema_version_is_refused(tmp_path: Path) -> None:
    """A schema_version that is not a number raises StoreError rather than guessing."""
    path = tmp_path / "history.db"
    SQLiteStore(path).close()
    with raw(path) as conn, conn:
        conn.execute("UPDATE meta SET value = 'banana' WHERE key = 'schema_version'")

    with pytest.raises(StoreError, match="unrecognised schema version 'banana'"):
        SQLiteStore(path)


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    """Pointing the store at a text file raises StoreError naming the file."""
    path = tmp_path / "notes.txt"
    path.write_text("not a database\n" * 100)

    with pytest.raises(StoreError, match=re.escape(str(path))):
        SQLiteStore(path)


def test_missing_parent_directories_are_created(tmp_path: Path) -> None:
    """The store creates the directories leading to its file."""
    path = tmp_path / "deep" / "er" / "history.db"

    SQLiteStore(str(path)).close()

    assert path.is_file()


def test_history_persists_across_reopening(tmp_path: Path) -> None:
    """A run recorded and closed reads back the same from a new store on the same file."""
    path = tmp_path / "history.db"
    first = SQLiteStore(path)
    first.record(
        [
            RunStarted("r1", "etl", {"day": "2024-05-01"}, ["a"], T0, "mod", "/f.py"),
            AttemptStarted("r1", "a", 1, T0),
            AttemptEnded("r1", "a", 1, State.SUCCESS, T0, State.SUCCESS),
            RunEnded("r1", State.SUCCESS, T0),
        ]
    )
    run, attempts = first.get_run("r1"), first.attempts("r1")
    first.close()

    second = SQLiteStore(str(path))
    try:
        assert second.get_run("r1") == run
        assert second.attempts("r1") == attempts
    finally:
        second.close()


def test_a_second_store_on_the_same_file_sees_each_record_at_once(tmp_path: Path) -> None:
    """Two stores (two connections) on one file: each committed record is visible to the other."""
    path = tmp_path / "history.db"
    writer, reader = SQLiteStore(path), SQLiteStore(path)
    try:
        writer.record([RunStarted("r1", "etl", {}, ["a"], T0)])
        assert reader.get_run("r1").state == State.RUNNING
        writer.record([RunEnded("r1", State.SUCCESS, T0)])
        assert reader.get_run("r1").state == State.SUCCESS
    finally:
        writer.close()
        reader.close()


def test_a_writer_that_holds_the_lock_too_long_gives_store_error(tmp_path: Path) -> None:
    """A write that waits past the timeout raises StoreError saying the file is locked."""
    path = tmp_path / "history.db"
    store = SQLiteStore(path, timeout=0.02)
    try:
        with raw(path) as other:
            other.isolation_level = None
            other.execute("BEGIN IMMEDIATE")
            with pytest.raises(StoreError, match="locked") as info:
                store.record([RunStarted("r1", "etl", {}, ["a"], T0)])
            other.execute("ROLLBACK")
        assert str(path) in str(info.value)
        store.record([RunStarted("r1", "etl", {}, ["a"], T0)])
        assert [r.id for r in store.list_runs()] == ["r1"]
    finally:
        store.close()


def test_each_record_call_is_one_immediate_transaction(tmp_path: Path) -> None:
    """record() wraps all its changes in one BEGIN IMMEDIATE, committed, or rolled back on error."""
    store = SQLiteStore(tmp_path / "history.db")
    try:
        statements: list[str] = []
        assert store._conn is not None
        store._conn.set_trace_callback(statements.append)

        store.record(
            [
                RunStarted("r1", "etl", {}, ["a", "b", "c"], T0),
                AttemptStarted("r1", "a", 1, T0),
                RunEnded("r1", State.SUCCESS, T0),
            ]
        )
        with pytest.raises(StoreError):
            store.record([RunEnded("r1", State.FAILED, T0), RunEnded("ghost", State.FAILED, T0)])

        transactions = [s for s in statements if s in ("BEGIN IMMEDIATE", "COMMIT", "ROLLBACK")]
        assert transactions == ["BEGIN IMMEDIATE", "COMMIT", "BEGIN IMMEDIATE", "ROLLBACK"]
        assert statements[0] == "BEGIN IMMEDIATE"
        assert store.get_run("r1").state == State.SUCCESS
    finally:
        store.close()


def test_list_runs_reads_a_fixed_number_of_statements(tmp_path: Path) -> None:
    """list_runs runs one query for runs and one for their tasks, however many runs match."""
    store = SQLiteStore(tmp_path / "history.db")
    try:
        for i in range(10):
            store.record([RunStarted(f"r{i}", "etl", {}, ["a", "b"], T0 + timedelta(i))])
        statements: list[str] = []
        assert store._conn is not None
        store._conn.set_trace_callback(statements.append)

        runs = store.list_runs(limit=3)

        selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
        assert [r.id for r in runs] == ["r9", "r8", "r7"]
        assert len(selects) == 2
        assert "LIMIT" in selects[0]
    finally:
        store.close()


WRITER = """
sys.stdin.readline()  # start together: opening a new file and writing race on purpose
store = SQLiteStore(sys.argv[1])
worker, count = sys.argv[2], int(sys.argv[3])
for i in range(count):
    run_id, at = f"{worker}-{i}", T0 + timedelta(seconds=i)
    store.record([RunStarted(run_id, "dag", {"worker": worker, "i": i}, ["a", "b"], at)])
    store.record([AttemptStarted(run_id, "a", 1, at)])
    store.record([AttemptEnded(run_id, "a", 1, State.SUCCESS, at, State.SUCCESS)])
    store.record([TaskStateSet(run_id, ["b"], State.SKIPPED, at), RunEnded(run_id, "success", at)])
store.close()
"""


@pytest.mark.slow
def test_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    """Several processes creating and writing one new file at once: every change is kept."""
    path = tmp_path / "history.db"
    workers, count = 4, 30
    with ExitStack() as stack:
        procs = [
            stack.enter_context(child(WRITER, str(path), f"w{w}", str(count)))
            for w in range(workers)
        ]
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for proc in procs:
            _, err = proc.communicate()
            assert proc.returncode == 0, err

    store = SQLiteStore(path)
    try:
        runs = store.list_runs()
        assert len(runs) == workers * count
        assert {r.id for r in runs} == {f"w{w}-{i}" for w in range(workers) for i in range(count)}
        assert all(
            r.params == {"worker": r.id.split("-")[0], "i": int(r.id.split("-")[1])} for r in runs
        )
        assert {(r.state, r.tasks["a"].state, r.tasks["b"].state) for r in runs} == {
            (State.SUCCESS, State.SUCCESS, State.SKIPPED)
        }
        assert {r.tasks["a"].attempts for r in runs} == {1}
    finally:
        store.close()
    with raw(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


BLOCK_INSIDE_RECORD = """
from collections.abc import Mapping

class BlockingParams(Mapping):
    # Iterated while encoding params, i.e. inside record()'s open transaction.
    def __getitem__(self, key): raise KeyError(key)
    def __len__(self): return 0
    def __iter__(self):
        print("inside record", flush=True)
        sys.stdin.readline()  # blocks until the parent kills this process
        return iter(())

store = SQLiteStore(sys.argv[1])
for i in range(3):
    run_id, at = f"r{i}", T0 + timedelta(seconds=i)
    store.record([RunStarted(run_id, "dag", {"i": i}, ["a"], at)])
    store.record([AttemptStarted(run_id, "a", 1, at)])
    if i < 2:
        store.record([AttemptEnded(run_id, "a", 1, State.SUCCESS, at, State.SUCCESS),
                      RunEnded(run_id, State.SUCCESS, at)])
print("recorded", flush=True)
store.record([AttemptEnded("r2", "a", 1, State.FAILED, T0, State.FAILED, "x"),
              RunStarted("r3", "dag", BlockingParams(), ["a"], T0)])
"""


@pytest.mark.slow
@posix_only
def test_a_process_killed_inside_record_leaves_history_as_of_its_last_call(
    tmp_path: Path,
) -> None:
    """SIGKILL during a record() call keeps exactly the earlier calls and none of that one."""
    path = tmp_path / "history.db"
    with child(BLOCK_INSIDE_RECORD, str(path)) as proc:
        assert read_line(proc) == "recorded"
        assert read_line(proc) == "inside record"
        kill(proc)

    store = SQLiteStore(path)
    try:
        runs = {r.id: r for r in store.list_runs()}
        assert sorted(runs) == ["r0", "r1", "r2"]
        assert [runs[r].state for r in ["r0", "r1", "r2"]] == [
            State.SUCCESS,
            State.SUCCESS,
            State.RUNNING,
        ]
        assert runs["r2"].tasks["a"].state == State.RUNNING
        assert runs["r2"].tasks["a"].error is None
        [attempt] = store.attempts("r2")
        assert (attempt.state, attempt.ended_at) == (State.RUNNING, None)
        store.record([RunStarted("r3", "dag", {}, ["a"], T0)])  # the lock was released
    finally:
        store.close()


WRITE_FOREVER = """
store = SQLiteStore(sys.argv[1])
i = 0
while True:
    run_id, at = f"r{i:06d}", T0 + timedelta(seconds=i)
    store.record([RunStarted(run_id, "dag", {}, ["a"], at), AttemptStarted(run_id, "a", 1, at)])
    store.record([AttemptEnded(run_id, "a", 1, State.SUCCESS, at, State.SUCCESS),
                  RunEnded(run_id, State.SUCCESS, at)])
    print(i, flush=True)
    i += 1
"""


@pytest.mark.slow
@posix_only
def test_a_process_killed_at_any_moment_leaves_whole_calls_only(tmp_path: Path) -> None:
    """SIGKILL amid a stream of writes keeps every reported call whole and no half call."""
    path = tmp_path / "history.db"
    with child(WRITE_FOREVER, str(path)) as proc:
        while int(read_line(proc)) < 20:
            pass
        kill(proc)

    store = SQLiteStore(path)
    try:
        runs = store.list_runs()
        assert len(runs) >= 21
        finished = (State.SUCCESS, State.SUCCESS, 1, State.SUCCESS)
        started = (State.RUNNING, State.RUNNING, 1, State.RUNNING)
        shapes = []
        for run in runs:
            [attempt] = store.attempts(run.id)
            shapes.append((run.state, run.tasks["a"].state, run.tasks["a"].attempts, attempt.state))
        # Only the newest run may be caught between its two calls.
        assert shapes[0] in (finished, started)
        assert set(shapes[1:]) == {finished}
    finally:
        store.close()
    with raw(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_opening_waits_for_another_process_creating_the_file(tmp_path: Path) -> None:
    """While another connection holds a new file's lock, opening waits instead of failing.

    (SQLite answers "database is locked" at once, without the busy timeout, to a switch
    into WAL mode while another connection writes a new file's first transaction: two
    processes starting on a new history file met it.)
    """
    path = tmp_path / "history.db"
    creator = sqlite3.connect(path, isolation_level=None)
    creator.execute("BEGIN IMMEDIATE")
    creator.execute("CREATE TABLE scratch (x)")
    opened: list[SQLiteStore] = []
    failed: list[BaseException] = []

    def open_store() -> None:
        try:
            opened.append(SQLiteStore(path, timeout=5))
        except BaseException as exc:
            failed.append(exc)

    opener = threading.Thread(target=open_store)
    opener.start()
    opener.join(0.03)
    still_waiting = opener.is_alive()
    creator.execute("ROLLBACK")
    creator.close()
    opener.join(5)

    assert still_waiting
    assert failed == []
    assert len(opened) == 1
    try:
        assert opened[0].list_runs() == []
    finally:
        opened[0].close()
