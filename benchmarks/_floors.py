"""The floors: the least any orchestrator can do for the same work, in plain Python.

* floor (a): call the functions in ``graphlib.TopologicalSorter`` order (the sort is
  timed), pass values through a dict, then write one history row per task with
  ``executemany`` in one transaction to a fresh WAL-mode SQLite file;
* floor (b): the same, but each task's row is inserted (running) and updated
  (success) with a commit after each write: 2 commits per task;
* the backfill floor: floor (a)'s work once per logical date, with one run row per
  date, and all rows inserted in one batch at the end.

pipekit's ``SQLiteStore`` also uses WAL and ``synchronous=NORMAL``, as these do.
"""

from __future__ import annotations

import graphlib
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from _dags import Graph
from _harness import timed

_SCHEMA = (
    "CREATE TABLE runs (id TEXT PRIMARY KEY, dag TEXT NOT NULL, state TEXT NOT NULL,"
    " params TEXT, started_at REAL, ended_at REAL)",
    "CREATE TABLE task_runs (run_id TEXT NOT NULL, task_id TEXT NOT NULL, state TEXT NOT NULL,"
    " started_at REAL, ended_at REAL, PRIMARY KEY (run_id, task_id)) WITHOUT ROWID",
)


def open_db(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    for statement in _SCHEMA:
        conn.execute(statement)
    return conn


def order(graph: Graph) -> Iterator[str]:
    """Task ids in topological order (``graphlib``: the sort is part of the floor)."""
    return iter(
        graphlib.TopologicalSorter({t: ups for t, (_, ups, _) in graph.items()}).static_order()
    )


def _calls(graph: Graph, run_id: str, rows: list[tuple[object, ...]], param: object = None) -> int:
    """Run ``graph`` in topological order, appending one finished row per task."""
    results: dict[str, int] = {}
    clock = time.time
    tid = ""
    for tid in order(graph):
        fn, ups, as_list = graph[tid]
        started = clock()
        values = [results[u] for u in ups]
        if as_list:
            results[tid] = fn(values)
        elif values:
            results[tid] = fn(*values)
        else:
            results[tid] = fn(param) if param is not None else fn()
        rows.append((run_id, tid, "success", started, clock()))
    return results[tid]


def batched(graph: Graph, conn: sqlite3.Connection) -> int:
    """Floor (a): call in topological order, then one executemany in one transaction."""
    rows: list[tuple[object, ...]] = []
    last = _calls(graph, "run", rows)
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO task_runs VALUES (?, ?, ?, ?, ?)", rows)
    conn.execute("COMMIT")
    return last


def committed(graph: Graph, conn: sqlite3.Connection) -> int:
    """Floor (b): as (a), with a committed write at each state change (running, success)."""
    results: dict[str, int] = {}
    clock = time.time
    execute = conn.execute
    tid = ""
    for tid in order(graph):
        fn, ups, as_list = graph[tid]
        execute("BEGIN")
        execute("INSERT INTO task_runs VALUES ('run', ?, 'running', ?, NULL)", (tid, clock()))
        execute("COMMIT")
        values = [results[u] for u in ups]
        results[tid] = fn(values) if as_list else fn(*values)
        execute("BEGIN")
        execute(
            "UPDATE task_runs SET state = 'success', ended_at = ? WHERE run_id = 'run'"
            " AND task_id = ?",
            (clock(), tid),
        )
        execute("COMMIT")
    return results[tid]


def backfill(graph: Graph, dates: list[str], conn: sqlite3.Connection) -> int:
    """The backfill floor: floor (a)'s work for each date, all rows in one batch."""
    runs: list[tuple[object, ...]] = []
    rows: list[tuple[object, ...]] = []
    total = 0
    clock = time.time
    for ds in dates:
        run_id = f"run-{ds}"
        started = clock()
        total += _calls(graph, run_id, rows, ds)
        runs.append((run_id, "bench_daily", "success", f'{{"ds": "{ds}"}}', started, clock()))
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?)", runs)
    conn.executemany("INSERT INTO task_runs VALUES (?, ?, ?, ?, ?)", rows)
    conn.execute("COMMIT")
    return total


def time_in_fresh_db(run: Callable[[sqlite3.Connection], int], want: int) -> float:
    """Seconds ``run(conn)`` takes against a new SQLite file (opened before the timer)."""
    with tempfile.TemporaryDirectory(prefix="pipekit-bench-") as tmp:
        conn = open_db(Path(tmp) / "floor.db")
        try:
            seconds, got = timed(lambda: run(conn))
        finally:
            conn.close()
    if got != want:
        raise SystemExit(f"floor computed {got!r}, expected {want!r}")
    return seconds
