"""pipekit's performance figures (issue 6), each with its floor, in one table.

Runs every workload of the performance targets and the floors they are compared
with, in the same run, and prints one table: figure, target, median, min, max,
ratio to floor, verdict. Nothing here asserts on timings; wrong results (a task
value, a run count) do stop the benchmark.

Groups (``--only``), in the order of the issue's targets:

  startup   1, 2  fresh processes: import pipekit; define + run a 3-task DAG
  overhead  3     10,000 no-op tasks (chain, fan) vs floors (a) and (b)
  backfill  4     365 dates x 10 tasks vs the same plain-Python work
  parallel  5     200 sleeps on 50 threads; 40 CPU tasks on 2 processes, vs ideal
  scale     6     layered DAGs of 1k/10k/100k tasks: define, run, peak RSS
  history   7     list_runs and `pipekit runs` on a store of 100,000 runs

Every process it times logs through structlog configured to drop events below
WARNING. Child processes cache bytecode in a temp PYTHONPYCACHEPREFIX (this sandbox
sets PYTHONDONTWRITEBYTECODE=1), so start-up is that of an installed package.

Usage:
    .venv/bin/python benchmarks/bench.py                  # everything, full size (~3 min)
    .venv/bin/python benchmarks/bench.py --quick          # smaller sizes and repeats (<1 min)
    .venv/bin/python benchmarks/bench.py --only overhead,backfill --repeat 7
    .venv/bin/python benchmarks/bench.py --json results.json
    .venv/bin/python benchmarks/bench.py --profile        # cProfile top 20 of the chain
    .venv/bin/python benchmarks/bench.py --profile backfill
    .venv/bin/python benchmarks/bench.py --importtime     # -X importtime of import pipekit
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import _backfill
import _history
import _overhead
import _parallel
import _scale
import _startup
from _harness import Figure, load_average, machine, quiet_logging, results_table, warm_bytecode

GROUPS: dict[str, Callable[[bool, int | None], list[Figure]]] = {
    "startup": _startup.measure,
    "overhead": _overhead.measure,
    "backfill": _backfill.measure,
    "parallel": _parallel.measure,
    "scale": _scale.measure,
    "history": _history.measure,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats")
    p.add_argument(
        "--only",
        metavar="NAME[,NAME]",
        help=f"run only these groups: {', '.join(GROUPS)}",
    )
    p.add_argument(
        "--repeat", type=int, metavar="R", help="repeats of every figure (default: per group)"
    )
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON")
    p.add_argument(
        "--profile",
        nargs="?",
        const="chain",
        choices=("chain", "backfill"),
        help="instead of the table: cProfile top 20 (tottime) of the sequential SQLite chain "
        "(or of a sequential backfill)",
    )
    p.add_argument(
        "--importtime", action="store_true", help="instead of the table: -X importtime top 15"
    )
    args = p.parse_args(argv)
    if args.repeat is not None and args.repeat < 1:
        p.error("--repeat must be at least 1")
    groups = list(GROUPS)
    if args.only:
        groups = [g.strip() for g in args.only.split(",") if g.strip()]
        unknown = [g for g in groups if g not in GROUPS]
        if unknown:
            p.error(f"unknown group(s) {', '.join(unknown)}; choose from {', '.join(GROUPS)}")
    args.groups = groups
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    quiet_logging()
    with warm_bytecode():
        if args.profile:
            from _profile import profile

            size = _overhead.QUICK if args.quick else _overhead.FULL
            print(profile(args.profile, size["tasks"], _backfill.FULL["dates"]))
            return
        if args.importtime:
            _startup.run_once("import pipekit")  # fill the bytecode cache first
            print(_startup.import_profile())
            return
        run(args)


def run(args: argparse.Namespace) -> None:
    about = machine()
    mode = "quick" if args.quick else "full"
    repeat = f"--repeat {args.repeat}" if args.repeat else "repeats per group"
    print(f"pipekit benchmark, {mode} size, {repeat}; groups: {', '.join(args.groups)}")
    for key in ("date", "system", "cpu", "cores", "python", "sqlite", "pipekit", "commit"):
        print(f"  {key}: {about[key]}")
    print(f"  load average at start: {about['load_at_start']}", flush=True)
    figures: list[Figure] = []
    took: dict[str, float] = {}
    t0 = time.perf_counter()
    for group in args.groups:
        g0 = time.perf_counter()
        figures += GROUPS[group](args.quick, args.repeat)
        took[group] = time.perf_counter() - g0
    total = time.perf_counter() - t0
    about["load_at_end"] = load_average()
    print()
    print(results_table(figures))
    print()
    meets = sum(f.verdict == "meets" for f in figures)
    misses = [f for f in figures if f.verdict == "misses"]
    print(f"targets: {meets} met, {len(misses)} missed" + (" (quick sizes)" if args.quick else ""))
    print(f"load average at end: {about['load_at_end']}; took {total:.0f} s (", end="")
    print(", ".join(f"{g} {s:.0f} s" for g, s in took.items()) + ")")
    if args.json:
        doc = {
            "machine": about,
            "quick": args.quick,
            "repeat": args.repeat,
            "seconds": took,
            "figures": [f.as_json() for f in figures],
        }
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"results written to {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
