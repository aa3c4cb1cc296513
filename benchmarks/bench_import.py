"""Start-up cost of pipekit: wall time of fresh Python processes.

Three commands, each run ``--runs`` times (default 15) in a fresh interpreter
(interleaved, after one untimed warm-up each, so caches and .pyc files are warm);
the median wall time counts:

* ``python -c "pass"``           the interpreter alone (the floor);
* ``python -c "import pipekit"`` importing the package;
* a 3-task DAG script              define extract -> transform -> load, run it once
                                   with the default store (SQLite history in
                                   ``$PIPEKIT_HOME``, a new temp dir per run) and the
                                   default executor (threads), then exit.

The DAG script configures structlog to drop events below WARNING, as
bench_overhead.py does. Bytecode is cached in a temp ``PYTHONPYCACHEPREFIX`` (written
by the warm-up), so the figures are those of an installed package with .pyc files,
even where ``PYTHONDONTWRITEBYTECODE`` is set; ``--as-is`` keeps the environment's
own settings instead. Nothing here asserts on timings.

Usage:
    python benchmarks/bench_import.py [--runs N] [--importtime] [--as-is]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

DAG_SCRIPT = """
import logging
import structlog
structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
from pipekit import dag, task

@task
def extract():
    return [1, 2, 3]

@task
def transform(rows):
    return [r * 10 for r in rows]

@task
def load(rows):
    return sum(rows)

@dag
def etl():
    load(transform(extract()))

run = etl.run()
assert run.tasks["load"].result == 60, run
"""

COMMANDS = {
    'python -c "pass"': "pass",
    'python -c "import pipekit"': "import pipekit",
    "3-task DAG, 1 run, SQLite history": DAG_SCRIPT,
}


def run_once(code: str, base_env: dict[str, str]) -> float:
    """Wall time of one fresh interpreter running ``code``, with a new PIPEKIT_HOME."""
    with tempfile.TemporaryDirectory(prefix="pipekit-bench-") as home:
        env = {**base_env, "PIPEKIT_HOME": home}
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
        )
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"command failed ({proc.returncode}):\n{code}\n{proc.stderr}")
        if code == DAG_SCRIPT and not os.path.exists(os.path.join(home, "history.db")):
            raise SystemExit("the DAG run wrote no history.db in PIPEKIT_HOME")
    return elapsed


def import_profile(top: int, env: dict[str, str]) -> None:
    """Print the modules with the largest cumulative import time (python -X importtime)."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import pipekit"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        self_us, cum_us, name = line.removeprefix("import time:").split("|", 2)
        rows.append((int(cum_us), int(self_us), name.strip()))
    rows.sort(reverse=True)
    print(f"\nimport pipekit, top {top} modules by cumulative import time (-X importtime):")
    for cum, self_t, name in rows[:top]:
        print(f"  {cum / 1000:8.2f} ms cumulative  {self_t / 1000:7.2f} ms self  {name}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--runs", type=int, default=15, help="timed runs per command (15)")
    p.add_argument("--importtime", action="store_true", help="also show -X importtime top 15")
    p.add_argument(
        "--as-is",
        action="store_true",
        help="keep this environment's bytecode settings (by default .pyc files are written "
        "to, and read from, a temp PYTHONPYCACHEPREFIX, so that imports are measured warm "
        "even where PYTHONDONTWRITEBYTECODE is set)",
    )
    args = p.parse_args(argv)
    runs = max(1, args.runs)
    with tempfile.TemporaryDirectory(prefix="pipekit-bench-pyc-") as pyc:
        env = dict(os.environ)
        if args.as_is:
            cache = f"as is (PYTHONDONTWRITEBYTECODE={env.get('PYTHONDONTWRITEBYTECODE', '')!r})"
        else:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = pyc
            cache = "warm .pyc cache in a temp PYTHONPYCACHEPREFIX"
        print(f"python: {platform.python_implementation()} {platform.python_version()}")
        print(f"cpus: {os.cpu_count()}, runs per command: {runs} (median counts)")
        print(f"bytecode: {cache}\n")
        measure(runs, env, args.importtime)


def measure(runs: int, env: dict[str, str], importtime: bool) -> None:
    for code in COMMANDS.values():  # warm-up: .pyc files, page cache
        run_once(code, env)
    times: dict[str, list[float]] = {label: [] for label in COMMANDS}
    for _ in range(runs):
        for label, code in COMMANDS.items():
            times[label].append(run_once(code, env))

    base = statistics.median(times['python -c "pass"'])
    width = max(len(label) for label in COMMANDS)
    print(f"| {'command':<{width}} | median ms |  min ms | minus pass ms |")
    print(f"|{'-' * (width + 2)}|----------:|--------:|--------------:|")
    for label, ts in times.items():
        med = statistics.median(ts)
        print(
            f"| {label:<{width}} | {med * 1000:9.1f} | {min(ts) * 1000:7.1f} "
            f"| {(med - base) * 1000:13.1f} |"
        )
    if importtime:
        import_profile(15, env)


if __name__ == "__main__":
    main()
