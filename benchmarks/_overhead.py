"""Target 3: per-task overhead of ``DAG.run`` on no-op tasks, against floors (a) and (b).

For each shape (a chain, and a 1 -> N-2 -> 1 fan), one repeat runs, in this order:
floor (a), floor (b), defining the DAG, its first run (sequential, SQLite: information
only, as it also builds what later runs reuse), then the timed cases on that DAG:
sequential with SQLite, sequential with MemoryStore, sequential with a store that
discards every change (the run loop alone), threads with SQLite.
Repeats are interleaved so that the floors and pipekit share the machine's load of
the moment.
Each pipekit run gets a new ``SQLiteStore`` in a temp dir, opened before the timer
and closed after it; ``run()`` returns only once its history is committed. The
processes executor runs at a smaller N (one pickled round trip per task) and is
information only, as is the time to define the DAG.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _dags
import _floors
from _harness import Figure, progress, timed

from pipekit.stores import MemoryStore, SQLiteStore

FULL = {"tasks": 10_000, "process_tasks": 1000, "repeat": 5}
QUICK = {"tasks": 1000, "process_tasks": 200, "repeat": 3}


class DiscardingStore(MemoryStore):
    """A store whose ``record`` does nothing: what the run loop costs without history."""

    def record(self, changes: Any) -> None:
        pass


@contextlib.contextmanager
def fresh_store(kind: str) -> Iterator[Any]:
    """A new, empty store: a SQLite file in a new temp dir, a MemoryStore, or none."""
    if kind in ("memory", "discard"):
        store: Any = MemoryStore() if kind == "memory" else DiscardingStore()
        try:
            yield store
        finally:
            store.close()
        return
    with tempfile.TemporaryDirectory(prefix="pipekit-bench-") as tmp:
        store = SQLiteStore(Path(tmp) / "history.db")
        try:
            yield store
        finally:
            store.close()


def time_run(d: Any, executor: str, store_kind: str, want: Any, **options: Any) -> float:
    """Seconds of one ``d.run(...)``; the last task's value is checked."""
    last = d.order[-1]
    with fresh_store(store_kind) as store:
        seconds, run = timed(lambda: d.run(executor=executor, store=store, **options))
    got = run.tasks[last].result
    if got != want:
        raise SystemExit(f"{d.name}: last task returned {got!r}, expected {want!r}")
    return seconds


def warm_up() -> None:
    """Import every code path once (executors, stores, sqlite3) before timing anything."""
    d = _dags.build("chain", 20)
    for executor in ("sequential", "threads", "processes"):
        for kind in ("sqlite", "memory"):
            time_run(d, executor, kind, _dags.expected("chain", 20))


def measure(quick: bool, repeat: int | None) -> list[Figure]:
    size = QUICK if quick else FULL
    n, proc_n = size["tasks"], size["process_tasks"]
    reps = repeat or size["repeat"]
    warm_up()
    figures: list[Figure] = []
    for shape in ("chain", "fan"):
        figures += _shape(shape, n, proc_n, reps)
    return figures


def _shape(shape: str, n: int, proc_n: int, reps: int) -> list[Figure]:
    graph = _dags.plain(shape, n)
    want = _dags.expected(shape, n)
    us = 1e6 / n
    samples: dict[str, list[float]] = {
        k: [] for k in ("a", "b", "first", "seq", "mem", "null", "threads", "define", "proc")
    }
    for r in range(reps):
        progress(f"overhead: {shape} N={n}, repeat {r + 1}/{reps}")
        samples["a"].append(
            _floors.time_in_fresh_db(lambda c: _floors.batched(graph, c), want) * us
        )
        samples["b"].append(
            _floors.time_in_fresh_db(lambda c: _floors.committed(graph, c), want) * us
        )
        seconds, d = timed(lambda: _dags.build(shape, n))
        samples["define"].append(seconds * us)
        # A DAG's first run also builds what later runs reuse (binding plans): timed as
        # an information row, so that every case below runs under the same conditions.
        samples["first"].append(time_run(d, "sequential", "sqlite", want) * us)
        samples["seq"].append(time_run(d, "sequential", "sqlite", want) * us)
        samples["mem"].append(time_run(d, "sequential", "memory", want) * us)
        samples["null"].append(time_run(d, "sequential", "discard", want) * us)
        samples["threads"].append(time_run(d, "threads", "sqlite", want) * us)
        pd = _dags.build(shape, proc_n)
        samples["proc"].append(
            time_run(pd, "processes", "sqlite", _dags.expected(shape, proc_n)) * 1e6 / proc_n
        )
    floor_a = Figure("", "", "", "us", samples["a"]).median
    k = f"{n // 1000}k" if n >= 1000 else str(n)
    kp = f"{proc_n // 1000}k" if proc_n >= 1000 else str(proc_n)
    common: dict[str, Any] = {"floor": floor_a, "floor_name": "floor (a)"}
    prefix = f"overhead.{shape}"
    return [
        Figure(
            f"{prefix}.floor_a",
            "3",
            f"{shape} {k}: floor (a), plain calls + 1 batched insert, per task",
            "us",
            samples["a"],
            **common,
        ),
        Figure(
            f"{prefix}.floor_b",
            "3",
            f"{shape} {k}: floor (b), plain calls + 2 commits, per task",
            "us",
            samples["b"],
            **common,
        ),
        Figure(
            f"{prefix}.sequential",
            "3",
            f"{shape} {k}: sequential, SQLite, per task",
            "us",
            samples["seq"],
            ratio_limit=3,
            **common,
        ),
        Figure(
            f"{prefix}.threads",
            "3",
            f"{shape} {k}: threads, SQLite, per task",
            "us",
            samples["threads"],
            limit=60,
            **common,
        ),
        Figure(
            f"{prefix}.memory",
            "3",
            f"{shape} {k}: sequential, MemoryStore, per task (info)",
            "us",
            samples["mem"],
            **common,
        ),
        Figure(
            f"{prefix}.no_history",
            "3",
            f"{shape} {k}: sequential, no history (record() discards), per task (info)",
            "us",
            samples["null"],
            **common,
        ),
        Figure(
            f"{prefix}.first_run",
            "3",
            f"{shape} {k}: sequential, SQLite, first run after define, per task (info)",
            "us",
            samples["first"],
            **common,
        ),
        Figure(
            f"{prefix}.processes",
            "3",
            f"{shape} {kp}: processes, SQLite, per task (info)",
            "us",
            samples["proc"],
            **common,
        ),
        Figure(
            f"{prefix}.define",
            "3",
            f"{shape} {k}: define the DAG, per task (info)",
            "us",
            samples["define"],
        ),
    ]
