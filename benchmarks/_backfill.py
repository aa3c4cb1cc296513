"""Target 4: a backfill of 365 dates of a 10-task DAG (1 -> 8 -> 1), with SQLite history.

Each repeat times, back to back: the floor (the same plain-Python calls for the 3,650
task-runs, one run row per date, every row inserted in one batch), then
``pipekit.backfill(dag, start, end, progress=False)`` into a fresh ``SQLiteStore``
with the sequential executor, then the same with the default (threads) executor. The
overhead of a repeat is (backfill time - floor time) / task-runs; its median is the
figure compared with the target.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import _dags
import _floors
from _harness import Figure, progress, timed
from _overhead import fresh_store

import pipekit

FULL = {"dates": 365, "repeat": 3}
QUICK = {"dates": 365, "repeat": 1}
START = date(2025, 1, 1)


def run_backfill(d: pipekit.DAG, dates: int, executor: str, store: Any) -> Any:
    """Backfill ``dates`` days from :data:`START`, without a progress bar."""
    end = START + timedelta(days=dates - 1)
    return pipekit.backfill(
        d, START.isoformat(), end.isoformat(), store=store, executor=executor, progress=False
    )


def time_backfill(d: pipekit.DAG, dates: int, executor: str) -> float:
    with fresh_store("sqlite") as store:
        seconds, report = timed(lambda: run_backfill(d, dates, executor, store))
        recorded = len(store.list_runs(dag=d.name, state="success"))
    runs = [o.run for o in report.dates.values()]
    if len(runs) != dates or recorded != dates or any(r is None for r in runs):
        raise SystemExit(f"backfill ran {len(runs)} dates, {recorded} recorded; expected {dates}")
    if any(r.tasks["collect"].result != 16 for r in runs if r is not None):
        raise SystemExit("backfill: a run's last task returned a wrong value")
    return seconds


def measure(quick: bool, repeat: int | None) -> list[Figure]:
    size = QUICK if quick else FULL
    dates, reps = size["dates"], repeat or size["repeat"]
    task_runs = dates * 10
    d = _dags.backfill_dag()
    graph = _dags.plain_backfill()
    days = [(START + timedelta(days=i)).isoformat() for i in range(dates)]
    us = 1e6 / task_runs
    time_backfill(d, 3, "sequential")  # warm-up: pendulum, the backfill module
    floor: list[float] = []
    totals: dict[str, list[float]] = {"sequential": [], "threads": []}
    for r in range(reps):
        progress(f"backfill: {dates} dates x 10 tasks, repeat {r + 1}/{reps}")
        floor.append(
            _floors.time_in_fresh_db(lambda c: _floors.backfill(graph, days, c), 16 * dates) * us
        )
        for executor, samples in totals.items():
            samples.append(time_backfill(d, dates, executor) * us)
    floor_med = Figure("", "", "", "us", floor).median
    label = f"backfill {dates} dates x 10 tasks"
    common: dict[str, Any] = {"floor": floor_med, "floor_name": "floor"}
    figures = [
        Figure(
            "backfill.floor",
            "4",
            f"{label}: floor, plain calls + batched inserts, per task-run",
            "us",
            floor,
            **common,
        )
    ]
    for executor, samples in totals.items():
        name = "threads (default)" if executor == "threads" else executor
        figures.append(
            Figure(
                f"backfill.{executor}.total",
                "4",
                f"{label}, {name}: per task-run (info)",
                "us",
                samples,
                **common,
            )
        )
        figures.append(
            Figure(
                f"backfill.{executor}.overhead",
                "4",
                f"{label}, {name}: overhead per task-run (total - floor)",
                "us",
                [t - f for t, f in zip(samples, floor, strict=True)],
                limit=40,
            )
        )
    return figures
