"""``--profile``: cProfile of one sequential run of the no-op chain with SQLite history.

``--profile backfill`` profiles a sequential backfill of the 10-task DAG instead
(per-run costs, where the chain shows per-task ones).

A busy run loop commits its history batches in its own thread, but a blocked one
leaves them to its writer's flusher thread (group commit), which a plain
``cProfile.Profile().enable()`` would not see: a profiler is per thread. So one
profiler is enabled in the calling thread and ``threading.setprofile`` starts another
in every thread the run starts. Each thread's top functions by ``tottime`` are
printed separately (the calling thread: top 20; others: top 10, threads of one name
merged): merged, one
thread's waits would be counted beside the other thread's work.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import threading
import time
from typing import Any

import _dags
from _backfill import run_backfill
from _overhead import fresh_store, warm_up


def profile(what: str, n: int, dates: int, top: int = 20) -> str:
    warm_up()
    started: list[tuple[str, cProfile.Profile]] = []

    def start_in_thread(*_: Any) -> None:
        prof = cProfile.Profile()
        started.append((threading.current_thread().name, prof))
        prof.enable()  # replaces this hook for the rest of the thread

    with fresh_store("sqlite") as store:
        main = cProfile.Profile()
        threading.setprofile(start_in_thread)
        t0 = time.perf_counter()
        main.enable()
        try:
            if what == "backfill":
                run_backfill(_dags.backfill_dag(), dates, "sequential", store)
            else:
                _dags.build("chain", n).run(executor="sequential", store=store)
        finally:
            main.disable()
            threading.setprofile(None)  # type: ignore[arg-type]
        wall = time.perf_counter() - t0
    if what == "backfill":
        head = f"backfill of {dates} dates x 10 no-op tasks"
        per = f"{wall / dates * 1e3:.2f} ms/date"
    else:
        head, per = f"chain of {n} no-op tasks", f"{wall / n * 1e6:.1f} µs/task"
    lines = [
        f"cProfile: {head}, sequential, SQLite history; {wall:.3f} s under the profiler ({per})"
    ]
    by_name: dict[str, list[cProfile.Profile]] = {}
    for name, prof in started:  # a backfill starts one writer thread per run: merge them
        by_name.setdefault(name, []).append(prof)
    lines += ["", *_top("MainThread", [main], top)]
    for name, profs in by_name.items():
        label = f"{name} threads ({len(profs)}, merged)" if len(profs) > 1 else f"{name} thread"
        lines += ["", *_top(label, profs, top // 2)]
    return "\n".join(lines)


def _top(name: str, profs: list[cProfile.Profile], count: int) -> list[str]:
    out = io.StringIO()
    stats = pstats.Stats(profs[0], stream=out)
    for prof in profs[1:]:
        stats.add(prof)
    total = float(stats.total_tt)  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(count)
    body = out.getvalue()
    start = body.find("   ncalls")
    table = body[start:].rstrip() if start >= 0 else body.rstrip()
    return [f"{name}: {total:.3f} s profiled; top {count} by tottime", table]
