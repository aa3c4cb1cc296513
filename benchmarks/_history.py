"""Target 7: history queries on a store holding 100,000 runs.

The store is built once per benchmark run through ``SQLiteStore.record`` in batches
of 2,000 runs (``RunStarted`` then, for finished runs, ``RunEnded``): 20 DAGs of 3
to 12 tasks (about 750k task rows in all), some run far more often than others, one
run every 5 minutes or so from 2024-01-01 on; about 90% succeed, 7% fail and 3% are
still running. Then:

* ``store.list_runs(dag="dag_03", state="failed", limit=50)``: the store is opened
  once, the first call is untimed, then the median of ``repeat`` calls;
* ``python -m pipekit --store DB runs --limit 20`` in a fresh process (its floor is
  ``python -c "pass"``, timed alongside), and the same with
  ``--state failed --dag dag_03``.
"""

from __future__ import annotations

import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _harness import Figure, progress

from pipekit.state import State
from pipekit.stores import RunEnded, RunStarted, SQLiteStore

FULL = {"runs": 100_000, "repeat": 30, "cli_repeat": 10}
QUICK = {"runs": 10_000, "repeat": 10, "cli_repeat": 3}
DAGS = [f"dag_{k:02d}" for k in range(20)]
WEIGHTS = [1 + (k * 7) % 11 for k in range(20)]  # some DAGs run ten times as often as others
QUERY_DAG = "dag_03"


def build_store(path: Path, runs: int, batch: int = 2000) -> dict[str, int]:
    """Record ``runs`` runs in ``path``; return how many ended in each state."""
    rng = random.Random(6)
    store = SQLiteStore(path)
    tasks = {d: [f"task_{j}" for j in range(3 + k % 10)] for k, d in enumerate(DAGS)}
    counts = {"success": 0, "failed": 0, "running": 0}
    at = datetime(2024, 1, 1, tzinfo=UTC)
    changes: list[Any] = []
    try:
        for i in range(runs):
            at += timedelta(seconds=rng.randint(60, 540))
            dag = rng.choices(DAGS, WEIGHTS)[0]
            run_id = f"{at:%Y%m%dT%H%M%S}-{i:012x}"
            changes.append(RunStarted(run_id, dag, {"ds": f"{at:%Y-%m-%d}"}, tasks[dag], at))
            roll = rng.random()
            if roll < 0.03:
                counts["running"] += 1
            else:
                state = State.FAILED if roll < 0.10 else State.SUCCESS
                counts[str(state)] += 1
                error = "task_2 failed: ValueError: bad row" if state == State.FAILED else None
                ended = at + timedelta(seconds=rng.randint(5, 600))
                changes.append(RunEnded(run_id, state, ended, error))
            if (i + 1) % batch == 0:
                store.record(changes)
                changes = []
        store.record(changes)
    finally:
        store.close()
    return counts


def _cli(db: Path, *args: str) -> float:
    cmd = [sys.executable, "-m", "pipekit", "--store", str(db), "runs", *args]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0 or "dag_" not in proc.stdout:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    return elapsed


def _pass() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - t0


def measure(quick: bool, repeat: int | None) -> list[Figure]:
    size = QUICK if quick else FULL
    n, reps, cli_reps = size["runs"], repeat or size["repeat"], repeat or size["cli_repeat"]
    with tempfile.TemporaryDirectory(prefix="pipekit-bench-") as tmp:
        db = Path(tmp) / "history.db"
        progress(f"history: recording {n} runs")
        t0 = time.perf_counter()
        counts = build_store(db, n)
        build_s = time.perf_counter() - t0
        progress(f"history: {n} runs recorded in {build_s:.1f} s ({counts})")

        store = SQLiteStore(db)
        try:
            filtered = _time_calls(
                lambda: store.list_runs(dag=QUERY_DAG, state="failed", limit=50), reps, 50
            )
            newest = _time_calls(lambda: store.list_runs(limit=50), reps, 50)
        finally:
            store.close()

        filters = ("--state", "failed", "--dag", QUERY_DAG, "--limit", "20")
        _cli(db, "--limit", "20")  # warm-up: bytecode cache, page cache
        runs_cli: list[float] = []
        runs_filtered: list[float] = []
        floor: list[float] = []
        progress(f"history: `pipekit runs` x {cli_reps} fresh processes")
        for _ in range(cli_reps):
            floor.append(_pass())
            runs_cli.append(_cli(db, "--limit", "20"))
            runs_filtered.append(_cli(db, *filters))
    k = f"{n // 1000}k"
    cli_floor: dict[str, Any] = {
        "floor": Figure("", "", "", "s", floor).median,
        "floor_name": "python -c pass",
    }
    extra = {"runs": n, "build_seconds": build_s, "states": counts}
    return [
        Figure(
            "history.list_runs_filtered",
            "7",
            f'{k} runs: list_runs(dag=..., state="failed", limit=50)',
            "ms",
            filtered,
            limit=50,
            extra=extra,
        ),
        Figure(
            "history.list_runs_newest",
            "7",
            f"{k} runs: list_runs(limit=50) (info)",
            "ms",
            newest,
        ),
        Figure(
            "history.cli_runs",
            "7",
            f"{k} runs: `pipekit runs --limit 20`, fresh process",
            "s",
            runs_cli,
            limit=0.3,
            **cli_floor,
        ),
        Figure(
            "history.cli_runs_filtered",
            "7",
            f"{k} runs: `pipekit runs --state failed --dag X`, fresh process",
            "s",
            runs_filtered,
            limit=0.3,
            **cli_floor,
        ),
    ]


def _time_calls(call: Any, reps: int, want: int) -> list[float]:
    """Milliseconds of ``reps`` calls (after one untimed); each must return ``want`` runs."""
    got = call()
    if len(got) != want:
        raise SystemExit(f"history query returned {len(got)} runs, expected {want}")
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        call()
        times.append((time.perf_counter() - t0) * 1000)
    return times
