"""Target 6: a layered DAG of 1k, 10k and 100k no-op tasks (fan-in up to 3).

Each size runs in a fresh process (``python benchmarks/_scale.py N``), so that sizes
do not share a heap: it defines the DAG (timed), runs it with the sequential
executor and a new ``SQLiteStore`` (timed), then reads its peak RSS. Only after that
does it time floor (a) on the same graph, for the ratio. It prints one JSON line.

Peak RSS is ``VmHWM`` from ``/proc/self/status``, not
``getrusage(RUSAGE_SELF).ru_maxrss``: on Linux ``ru_maxrss`` survives fork and exec,
so a child started by a 110 MB benchmark process reports at least 110 MB whatever it
does itself. ``ru_maxrss`` is the fallback where there is no ``/proc``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _harness import Figure, progress

FULL = {"sizes": (1000, 10_000, 100_000), "repeat": 3}
QUICK = {"sizes": (1000, 10_000), "repeat": 1}
LIMITS = {"define": 2.0, "run": 5.0, "rss": 300.0}  # at 100k tasks


def peak_rss_mb() -> float:
    """This process's peak resident set size in MB (see the module docstring)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(n: int) -> dict[str, float]:
    """Define and run one layered DAG of ``n`` tasks; return times and memory."""
    import resource

    from _harness import quiet_logging, timed

    quiet_logging()
    import _dags
    import _floors

    from pipekit.stores import SQLiteStore

    base_rss = peak_rss_mb()
    define_s, d = timed(lambda: _dags.build_layered(n))
    with tempfile.TemporaryDirectory(prefix="pipekit-bench-") as tmp:
        store = SQLiteStore(Path(tmp) / "history.db")
        run_s, run = timed(lambda: d.run(executor="sequential", store=store))
        store.close()
        if run.state != "success" or len(run.tasks) != n:
            raise SystemExit(f"layered run of {n} tasks ended {run.state}")
        peak = peak_rss_mb()
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    del run
    graph = _dags.plain_layered(n)
    floor_s = _floors.time_in_fresh_db(lambda c: _floors.batched(graph, c), 1)
    return {
        "define": define_s,
        "run": run_s,
        "rss": peak,
        "base_rss": base_rss,
        "ru_maxrss": maxrss,
        "floor": floor_s,
    }


def run_child(n: int) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, __file__, str(n)],
        capture_output=True,
        text=True,
        check=False,
        env=os.environ,
    )
    if proc.returncode != 0:
        raise SystemExit(f"scale child for {n} tasks failed:\n{proc.stderr}")
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def measure(quick: bool, repeat: int | None) -> list[Figure]:
    size = QUICK if quick else FULL
    reps = repeat or size["repeat"]
    run_child(1000)  # warm-up: bytecode cache
    figures = []
    for n in size["sizes"]:
        found: dict[str, list[float]] = {k: [] for k in ("define", "run", "rss", "base", "floor")}
        for r in range(reps):
            progress(f"scale: {n} tasks, repeat {r + 1}/{reps}")
            got = run_child(n)
            for key in ("define", "run", "rss", "floor"):
                found[key].append(got[key])
            found["base"].append(got["base_rss"])
        k = f"{n // 1000}k"
        at_limit = n == 100_000
        floor = Figure("", "", "", "s", found["floor"]).median
        base = Figure("", "", "", "MB", found["base"]).median
        define_us = Figure("", "", "", "s", found["define"]).median / n * 1e6
        figures += [
            Figure(
                f"scale.{k}.define",
                "6",
                f"layered {k} tasks: define ({define_us:.1f} µs/task)",
                "s",
                found["define"],
                limit=LIMITS["define"] if at_limit else None,
            ),
            Figure(
                f"scale.{k}.run",
                "6",
                f"layered {k} tasks: run, sequential, SQLite",
                "s",
                found["run"],
                limit=LIMITS["run"] if at_limit else None,
                floor=floor,
                floor_name="floor (a)",
            ),
            Figure(
                f"scale.{k}.rss",
                "6",
                f"layered {k} tasks: peak RSS (after import: {base:.0f} MB)",
                "MB",
                found["rss"],
                limit=LIMITS["rss"] if at_limit else None,
                extra={"rss_after_import": base},
            ),
        ]
    return figures


if __name__ == "__main__":
    print(json.dumps(child(int(sys.argv[1]))))
