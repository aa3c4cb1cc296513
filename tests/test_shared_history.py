"""Several processes writing one history at once: backfills and serve loops, without lost updates.

Four backfill processes (two DAGs, two date ranges each) and a serve loop write one
PostgreSQL database together; afterwards every run and every attempt is there exactly
once, in the right state. Two serve loops started together on the same DAG start each
interval once: the store's claims decide who runs it (for PostgreSQL and for SQLite).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import date, timedelta
from pathlib import Path

import pytest

from pipekit.stores import PostgresStore, SQLiteStore, Store
from tests import pg

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow

CHILD_TIMEOUT = 60.0
"""Seconds a child process may take before it is killed and the test fails."""

BACKFILL = """
import sys
import pipekit
from pipekit.stores import open_store
from tests.dags import shared_history

store = open_store(sys.argv[1])
dag = getattr(shared_history, sys.argv[2])
sys.stdin.readline()  # start together
report = pipekit.backfill(
    dag, sys.argv[3], sys.argv[4], store=store, retries=True, max_active_runs=2, progress=False
)
print("RESULT", len(report.succeeded), len(report.failed))
"""

SERVE = """
import sys
from datetime import datetime, UTC
import pipekit
from pipekit.stores import open_store
from pipekit.testing import FakeClock
from tests.dags import shared_history

store = open_store(sys.argv[1])
clock = FakeClock(start=datetime.fromisoformat(sys.argv[2]).replace(tzinfo=UTC))
sys.stdin.readline()  # start together
runs = pipekit.serve(shared_history.ledger, store=store, once=True, clock=clock)
print("RESULT", *(str(r.params["ds"]) for r in runs))
"""


def days(first: str, count: int) -> list[str]:
    """``count`` consecutive ISO dates from ``first``."""
    start = date.fromisoformat(first)
    return [(start + timedelta(days=i)).isoformat() for i in range(count)]


def start_together(jobs: list[list[str]], calls: Path) -> list[str]:
    """Run one child per argv (code first) from the repo root, release them at once.

    Returns each child's RESULT line; fails with a child's stderr if it exits non-zero.
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SHARED_CALLS": str(calls)}
    with ExitStack() as stack:
        procs = []
        for code, *args in jobs:
            proc = subprocess.Popen(
                [sys.executable, "-c", code, *args],
                cwd=ROOT,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            stack.callback(proc.kill)
            guard = threading.Timer(CHILD_TIMEOUT, proc.kill)
            guard.start()
            stack.callback(guard.cancel)
            procs.append(proc)
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outs = []
        for proc in procs:
            out, err = proc.communicate()
            assert proc.returncode == 0, err
            # structlog prints run events to stdout too: keep the result line only.
            result = [line for line in out.splitlines() if line.startswith("RESULT")]
            assert len(result) == 1, out
            outs.append(result[0].removeprefix("RESULT").strip())
        return outs


def read_calls(calls: Path) -> Counter[tuple[str, ...]]:
    """How often each (dag, ds, task, attempt) line was written by the tasks."""
    return Counter(tuple(line.split()) for line in calls.read_text().splitlines())


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A postgresql:// URL of a fresh schema on the test server, dropped afterwards."""
    dsn = pg.dsn_or_skip()
    schema = pg.new_schema("shared")
    yield f"{dsn}?schema={schema}"
    pg.drop_schema(schema)


def test_four_backfills_and_a_serve_loop_into_one_postgres_lose_nothing(
    postgres_url: str, tmp_path: Path
) -> None:
    """Every run and attempt written by five processes at once is there exactly once."""
    calls = tmp_path / "calls"
    PostgresStore(postgres_url).close()  # the schema exists before the race
    ranges = [("2024-01-01", "2024-01-06"), ("2024-01-07", "2024-01-12")]
    jobs = [
        [BACKFILL, postgres_url, dag, *span] for dag in ("orders", "payments") for span in ranges
    ]
    jobs.append([SERVE, postgres_url, "2024-01-07T00:30"])  # ledger: 2024-01-01 .. 06
    outs = start_together(jobs, calls)

    assert outs[:4] == ["6 0"] * 4
    assert sorted(outs[4].split()) == days("2024-01-01", 6)
    store = PostgresStore(postgres_url)
    try:
        runs = store.list_runs()
        assert len(runs) == 2 * 12 + 6
        assert {r.state for r in runs} == {"success"}
        keys = Counter((r.dag, r.params["ds"]) for r in runs)
        assert set(keys.values()) == {1}
        expected = {(d, ds) for d in ("orders", "payments") for ds in days("2024-01-01", 12)}
        expected |= {("ledger", ds) for ds in days("2024-01-01", 6)}
        assert set(keys) == expected
        for run in runs:
            history = store.attempts(run.id)
            numbers = Counter((a.task_id, a.number) for a in history)
            assert set(numbers.values()) == {1}
            retried = run.dag != "ledger" and date.fromisoformat(run.params["ds"]).day % 3 == 0
            if run.dag == "ledger":
                assert [(a.task_id, a.state) for a in history] == [("post", "success")]
            else:
                assert run.tasks["extract"].attempts == (2 if retried else 1)
                assert [a.state for a in history] == (["failed"] if retried else []) + [
                    "success"
                ] * 3
    finally:
        store.close()
    written = read_calls(calls)
    assert set(written.values()) == {1}  # no task ran twice, in any process
    assert len(written) == 2 * 12 * 3 + 8 + 6  # 8 retried extracts (days 3, 6, 9, 12)


def open_history(kind: str, tmp_path: Path) -> tuple[str, Store]:
    """A store URL of the given kind, and a store open on it for checking afterwards."""
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'history.db'}"
        return url, SQLiteStore(tmp_path / "history.db")
    dsn = pg.dsn_or_skip()
    schema = pg.new_schema("race")
    url = f"{dsn}?schema={schema}"
    return url, PostgresStore(url)


@pytest.mark.parametrize("kind", ["postgres", "sqlite"])
def test_two_serve_loops_racing_start_each_interval_once(kind: str, tmp_path: Path) -> None:
    """Two serve processes started together on one DAG and history run each day once."""
    calls = tmp_path / "calls"
    url, store = open_history(kind, tmp_path)
    try:
        outs = start_together([[SERVE, url, "2024-01-11T00:30"]] * 2, calls)
        started = [out.split() for out in outs]
        assert sorted(started[0] + started[1]) == days("2024-01-01", 10)  # disjoint, complete
        runs = store.list_runs(dag="ledger")
        assert sorted(r.params["ds"] for r in runs) == days("2024-01-01", 10)
        assert {r.state for r in runs} == {"success"}
        for day in days("2024-01-01", 10):
            assert not store.claim("ledger", day, "a third scheduler")
    finally:
        store.close()
        if isinstance(store, PostgresStore):
            pg.drop_schema(store.schema)
    assert sorted(read_calls(calls).elements()) == sorted(
        ("ledger", day, "post", "1") for day in days("2024-01-01", 10)
    )
