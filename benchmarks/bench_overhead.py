"""Per-task orchestration overhead of pipekit, measured against a hand-written floor.

Runs N no-op tasks in two shapes and times ``DAG.run`` for each executor:

* chain: t0 -> t1 -> ... -> tN-1, each task returning its input + 1;
* fan:   t0 -> (t1 .. tN-2, each taking t0's value) -> tN-1, which takes them all
  as one list argument.

Every pipekit run writes its history to a fresh SQLite file in a temp dir (store
opened before the timer starts, closed after it stops); sequential also runs with
MemoryStore to separate the store's cost from the run loop's. The "processes"
executor ships every task to a worker process and back (cloudpickle over pipes,
workers started by the run), so it runs at a smaller N (``--process-tasks``).

The floor, measured in the same process at the same N, with the same functions:

* floor (a): the functions called directly in ``graphlib.TopologicalSorter`` order,
  passing values through a dict, then one history row per task written with
  ``executemany`` in one transaction to a fresh WAL-mode SQLite file;
* floor (b): the same, but the row is inserted (running) and updated (success) with
  a commit after each, i.e. 2 commits per task (WAL, synchronous=NORMAL).

structlog is configured to drop events below WARNING: pipekit's default logging
prints every task event, which would measure the terminal, not the orchestrator.
Nothing here asserts on timings; results are only checked for correctness.

Usage:
    python benchmarks/bench_overhead.py [--tasks N] [--repeat R] [--process-tasks M]
    python benchmarks/bench_overhead.py --quick        # N=1000, R=1
    python benchmarks/bench_overhead.py --profile [sqlite|memory]  # cProfile, sequential chain
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import graphlib
import io
import logging
import os
import platform
import pstats
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

import pipekit
from pipekit import dag, task
from pipekit.stores.memory import MemoryStore

structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

SHAPES = ("chain", "fan")
PROCESSES_LABEL = "processes (1 pickled round trip / task)"


# -- the task functions (shared by pipekit and the floor) ---------------------------------


def source() -> int:
    return 0


def step(x: int) -> int:
    return x + 1


def collect(values: list[int]) -> int:
    return sum(values)


def expected(shape: str, n: int) -> int:
    """The value the last task returns: n-1 for a chain, n-2 (ones summed) for a fan."""
    return n - 1 if shape == "chain" else n - 2


# -- building the DAGs --------------------------------------------------------------------


def build(shape: str, n: int) -> pipekit.DAG:
    """Define an n-task DAG of ``shape`` in a @dag body, with tasks named t0 .. t{n-1}."""
    if n < 3:
        raise SystemExit("--tasks must be at least 3")

    def chain_body() -> None:
        ref = task(name="t0")(source)()
        for i in range(1, n):
            ref = task(name=f"t{i}")(step)(ref)

    def fan_body() -> None:
        src = task(name="t0")(source)()
        mids = [task(name=f"t{i}")(step)(src) for i in range(1, n - 1)]
        task(name=f"t{n - 1}")(collect)(mids)

    body = chain_body if shape == "chain" else fan_body
    return dag(name=f"bench_{shape}_{n}")(body)


# -- stores -------------------------------------------------------------------------------


def sqlite_store_class() -> type[Any] | None:
    """SQLiteStore, or None when pipekit.stores.sqlite cannot be imported."""
    try:
        from pipekit.stores.sqlite import SQLiteStore
    except ImportError:
        return None
    return SQLiteStore


@contextlib.contextmanager
def fresh_store(kind: str) -> Iterator[Any]:
    """A new, empty store: a SQLite file in a new temp dir, or a MemoryStore."""
    if kind == "memory":
        store: Any = MemoryStore()
        try:
            yield store
        finally:
            store.close()
        return
    cls = sqlite_store_class()
    assert cls is not None
    with tempfile.TemporaryDirectory(prefix="pipekit-bench-") as tmp:
        store = cls(Path(tmp) / "history.db")
        try:
            yield store
        finally:
            store.close()


# -- the floor ----------------------------------------------------------------------------


def floor_graph(shape: str, n: int) -> dict[str, tuple[Callable[..., int], list[str], bool]]:
    """task id -> (function, upstream ids, pass upstream values as one list)."""
    g: dict[str, tuple[Callable[..., int], list[str], bool]] = {"t0": (source, [], False)}
    if shape == "chain":
        for i in range(1, n):
            g[f"t{i}"] = (step, [f"t{i - 1}"], False)
    else:
        for i in range(1, n - 1):
            g[f"t{i}"] = (step, ["t0"], False)
        g[f"t{n - 1}"] = (collect, [f"t{i}" for i in range(1, n - 1)], True)
    return g


_FLOOR_SCHEMA = (
    "CREATE TABLE task_runs (run_id TEXT NOT NULL, task_id TEXT NOT NULL, state TEXT NOT NULL,"
    " started_at REAL, ended_at REAL, PRIMARY KEY (run_id, task_id)) WITHOUT ROWID"
)


def open_floor_db(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(_FLOOR_SCHEMA)
    return conn


def floor_batched(
    graph: dict[str, tuple[Callable[..., int], list[str], bool]], conn: sqlite3.Connection
) -> int:
    """Floor (a): call in topological order, then one executemany in one transaction."""
    results: dict[str, int] = {}
    rows = []
    ts = graphlib.TopologicalSorter({tid: ups for tid, (_, ups, _) in graph.items()})
    clock = time.time
    tid = ""
    for tid in ts.static_order():
        fn, ups, as_list = graph[tid]
        started = clock()
        values = [results[u] for u in ups]
        results[tid] = fn(values) if as_list else fn(*values)
        rows.append(("run", tid, "success", started, clock()))
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO task_runs VALUES (?, ?, ?, ?, ?)", rows)
    conn.execute("COMMIT")
    return results[tid]


def floor_committed(
    graph: dict[str, tuple[Callable[..., int], list[str], bool]], conn: sqlite3.Connection
) -> int:
    """Floor (b): as (a), with a committed write at each state change (running, success)."""
    results: dict[str, int] = {}
    ts = graphlib.TopologicalSorter({tid: ups for tid, (_, ups, _) in graph.items()})
    clock = time.time
    execute = conn.execute
    tid = ""
    for tid in ts.static_order():
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


# -- timing -------------------------------------------------------------------------------


@dataclass
class Row:
    case: str
    executor: str
    store: str
    n: int
    seconds: float
    floor_a: float
    floor_b: float


def time_once(fn: Callable[[], int], want: int) -> float:
    gc.collect()
    t0 = time.perf_counter()
    got = fn()
    elapsed = time.perf_counter() - t0
    if got != want:
        raise SystemExit(f"wrong result: got {got!r}, expected {want!r}")
    return elapsed


def time_floor(shape: str, n: int, repeat: int, variant: str) -> float:
    graph = floor_graph(shape, n)
    runner = floor_batched if variant == "a" else floor_committed
    times = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="pipekit-bench-") as tmp:
            conn = open_floor_db(Path(tmp) / "floor.db")
            try:
                times.append(time_once(lambda c=conn: runner(graph, c), expected(shape, n)))
            finally:
                conn.close()
    return statistics.median(times)


def time_pipekit(
    d: pipekit.DAG, shape: str, n: int, executor: str, store: str, repeat: int
) -> float:
    last = f"t{n - 1}"
    times = []
    for _ in range(repeat):
        with fresh_store(store) as s:

            def go(s: Any = s) -> int:
                run = d.run(executor=executor, store=s)
                return int(run.tasks[last].result)

            times.append(time_once(go, expected(shape, n)))
    return statistics.median(times)


def time_define(shape: str, n: int, repeat: int) -> tuple[float, pipekit.DAG]:
    """Median time to define the DAG (run the @dag body), and the DAG itself."""
    times = []
    built = None
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        built = build(shape, n)
        times.append(time.perf_counter() - t0)
    assert built is not None
    return statistics.median(times), built


def warm_up(store_kind: str) -> None:
    """Import everything a run touches (structlog, executors, store) before timing."""
    d = build("chain", 3)
    for executor in ("sequential", "threads", "processes"):
        with fresh_store(store_kind) as s:
            d.run(executor=executor, store=s)


# -- reporting ----------------------------------------------------------------------------


def machine() -> list[str]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return [
        f"machine: {platform.system()} {platform.release()} {platform.machine()}, {cpu}",
        f"cpus: os.cpu_count()={os.cpu_count()}, usable={usable}",
        f"python: {platform.python_implementation()} {platform.python_version()}"
        f" ({sys.executable})",
        f"sqlite: {sqlite3.sqlite_version}, temp dir: {tempfile.gettempdir()}",
        f"pipekit: {pipekit.__version__}",
    ]


def fmt_table(headers: list[str], rows: list[list[str]], right: set[int]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        out = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(out) + " |"

    sep = (
        "|"
        + "|".join(
            ("-" * (w + 1) + ":" if i in right else "-" * (w + 2)) for i, w in enumerate(widths)
        )
        + "|"
    )
    return "\n".join([line(headers), sep, *(line(r) for r in rows)])


def report(rows: list[Row], repeat: int) -> str:
    headers = [
        "case",
        "executor",
        "store",
        "N",
        f"total s (median of {repeat})",
        "µs / task",
        "vs floor (a)",
        "vs floor (b)",
    ]
    body = []
    for r in rows:
        ratio_a = f"{r.seconds / r.floor_a:.1f}x"
        ratio_b = f"{r.seconds / r.floor_b:.2f}x"
        body.append(
            [
                r.case,
                r.executor,
                r.store,
                str(r.n),
                f"{r.seconds:.4f}",
                f"{r.seconds / r.n * 1e6:.1f}",
                ratio_a,
                ratio_b,
            ]
        )
    return fmt_table(headers, body, right={3, 4, 5, 6, 7})


# -- main ---------------------------------------------------------------------------------


def run_all(n: int, proc_n: int, repeat: int) -> None:
    have_sqlite = sqlite_store_class() is not None
    sq = "sqlite" if have_sqlite else "memory"
    sq_label = "sqlite" if have_sqlite else "memory*"
    print("\n".join(machine()), flush=True)
    print(
        f"N={n} (processes: N={proc_n}), repeat={repeat}; structlog filtered to WARNING; "
        f"threads max_workers=default, processes max_workers=default"
    )
    if not have_sqlite:
        print("* pipekit.stores.sqlite is not importable: MemoryStore used in its place")
    print(flush=True)
    warm_up(sq)

    groups: dict[tuple[str, int], list[str]] = {}
    for shape in SHAPES:
        groups[shape, n] = ["sequential", "threads"]
    for shape in SHAPES:
        groups.setdefault((shape, proc_n), []).append("processes")
    rows: list[Row] = []
    defines: list[list[str]] = []
    for (shape, size), executors in groups.items():
        define_s, d = time_define(shape, size, repeat)
        defines.append([shape, str(size), f"{define_s:.4f}", f"{define_s / size * 1e6:.1f}"])
        fa = time_floor(shape, size, repeat, "a")
        fb = time_floor(shape, size, repeat, "b")
        rows.append(Row(shape, "floor (a)", "sqlite, 1 txn (executemany)", size, fa, fa, fb))
        rows.append(Row(shape, "floor (b)", "sqlite, 2 commits / task", size, fb, fa, fb))
        for executor in executors:
            label = PROCESSES_LABEL if executor == "processes" else executor
            secs = time_pipekit(d, shape, size, executor, sq, repeat)
            rows.append(Row(shape, label, sq_label, size, secs, fa, fb))
            if executor == "sequential":
                secs = time_pipekit(d, shape, size, executor, "memory", repeat)
                rows.append(Row(shape, label, "memory", size, secs, fa, fb))
        print(f"  done: {shape} N={size}", file=sys.stderr, flush=True)

    print("Run time (DAG.run only; store opened before and closed after the timer):")
    print(report(rows, repeat))
    print()
    print("Definition time (@dag body building the DAG, not included above):")
    print(
        fmt_table(["case", "N", f"total s (median of {repeat})", "µs / task"], defines, {1, 2, 3})
    )


def profile(n: int, kind: str) -> None:
    """cProfile one sequential run of the chain; print the top 10 functions by tottime."""
    if kind == "sqlite" and sqlite_store_class() is None:
        raise SystemExit("pipekit.stores.sqlite is not importable; use --profile memory")
    warm_up(kind)
    d = build("chain", n)
    with fresh_store(kind) as s:
        prof = cProfile.Profile()
        prof.enable()
        d.run(executor="sequential", store=s)
        prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats("tottime").print_stats(10)
    print(f"cProfile: chain, sequential, {kind}, N={n} (top 10 by tottime)")
    print(out.getvalue())


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--tasks", type=int, default=10_000, help="N for sequential/threads (10000)")
    p.add_argument("--repeat", type=int, default=3, help="runs per case; the median counts (3)")
    p.add_argument("--process-tasks", type=int, default=1000, help="N for processes (1000)")
    p.add_argument("--quick", action="store_true", help="N=1000, R=1")
    p.add_argument(
        "--profile",
        nargs="?",
        const="sqlite",
        choices=("sqlite", "memory"),
        help="instead of the table, cProfile the sequential chain with this store (sqlite)",
    )
    args = p.parse_args(argv)
    n, repeat, proc_n = args.tasks, args.repeat, args.process_tasks
    if args.quick:
        n, repeat, proc_n = 1000, 1, min(proc_n, 1000)
    proc_n = min(proc_n, n)
    if args.profile:
        profile(n, args.profile)
        return
    run_all(n, proc_n, max(1, repeat))


if __name__ == "__main__":
    main()
