"""``make bench-peers``: the same no-op chain with Luigi, Dagster and Prefect (and Airflow).

Optional and slow (minutes: it installs each tool). For each tool it creates a
throwaway virtual environment under a temp dir, ``pip install``s the tool there, then
measures, in that environment:

* import time: the median wall time of fresh ``python -c "import TOOL"`` processes
  (after one untimed, so the bytecode cache is warm), next to ``python -c "pass"``;
* per-task time: ``workloads.py TOOL --tasks N`` (a chain of N no-op tasks, one
  untimed run, then ``--repeat`` timed runs; the median counts), divided by N.

pipekit itself is measured the same way, in the interpreter running this script. A
tool whose install or run fails is skipped with a message; the others still run.
Everything lives in the temp dir and is deleted at the end (``--keep`` keeps it).

Usage:
    .venv/bin/python benchmarks/peers/run_peers.py [--peers luigi,dagster,prefect]
        [--tasks 100] [--repeat 3] [--keep] [--json PATH]
    ... --peers airflow      # opt-in: a large install, and dag.test() is slow
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WORKLOADS = HERE / "workloads.py"

# What pip installs, and the module to import, for each tool.
PEERS: dict[str, tuple[list[str], str]] = {
    "luigi": (["luigi"], "luigi"),
    "dagster": (["dagster"], "dagster"),
    "prefect": (["prefect"], "prefect"),
    "airflow": (["apache-airflow"], "airflow"),
}
DEFAULT_PEERS = "luigi,dagster,prefect"
INSTALL_TIMEOUT = 20 * 60
RUN_TIMEOUT = 30 * 60


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def child_env(home: Path) -> dict[str, str]:
    """Quiet logging for every tool, state under ``home``, bytecode cached under ``home``."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(home / "pycache")
    env["PREFECT_LOGGING_LEVEL"] = "WARNING"
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    env["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"
    for var in ("PIPEKIT_HOME", "PREFECT_HOME", "AIRFLOW_HOME", "DAGSTER_HOME"):
        path = home / var.lower()
        path.mkdir(parents=True, exist_ok=True)
        env[var] = str(path)
    return env


def make_venv(root: Path, name: str, packages: list[str]) -> Path | None:
    """A new venv with ``packages``; its python, or None (with a message) when pip fails."""
    venv = root / f"venv-{name}"
    python = venv / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    log(f"{name}: creating {venv} and installing {' '.join(packages)} (this takes a while)")
    t0 = time.perf_counter()
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        proc = subprocess.run(
            [*pip, *packages],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        log(f"{name}: SKIPPED, could not create its environment: {exc}")
        return None
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        log(f"{name}: SKIPPED, pip install failed ({proc.returncode}):\n{tail}")
        return None
    log(f"{name}: installed in {time.perf_counter() - t0:.0f} s")
    return python


def import_seconds(python: Path, module: str, env: dict[str, str], runs: int) -> list[float]:
    """Wall times of fresh ``python -c "import module"`` processes, after one untimed."""
    cmd = [str(python), "-c", f"import {module}" if module else "pass"]
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return times


def run_workload(
    python: Path, tool: str, tasks: int, repeat: int, env: dict[str, str]
) -> dict[str, Any] | None:
    cmd = [str(python), str(WORKLOADS), tool, "--tasks", str(tasks), "--repeat", str(repeat)]
    try:
        proc = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        log(f"{tool}: SKIPPED, the workload took over {RUN_TIMEOUT} s")
        return None
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        log(f"{tool}: SKIPPED, the workload failed ({proc.returncode}):\n{tail}")
        return None
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def measure(
    tool: str, python: Path, module: str, args: argparse.Namespace, env: dict[str, str]
) -> dict[str, Any] | None:
    log(f"{tool}: import time, {args.import_runs} fresh processes")
    try:
        imports = import_seconds(python, module, env, args.import_runs)
        bare = import_seconds(python, "", env, args.import_runs)
    except subprocess.CalledProcessError as exc:
        log(f"{tool}: SKIPPED, `import {module}` failed: {exc}")
        return None
    log(f"{tool}: chain of {args.tasks} tasks, 1 untimed + {args.repeat} timed runs")
    result = run_workload(python, tool, args.tasks, args.repeat, env)
    if result is None:
        return None
    result["import_s"] = statistics.median(imports)
    result["pass_s"] = statistics.median(bare)
    result["per_task_ms"] = statistics.median(result["seconds"]) / args.tasks * 1000
    result["per_task_ms_min"] = min(result["seconds"]) / args.tasks * 1000
    result["per_task_ms_max"] = max(result["seconds"]) / args.tasks * 1000
    log(f"{tool} {result['version']}: {result['per_task_ms']:.3f} ms/task")
    return result


def table(results: list[dict[str, Any]], tasks: int, repeat: int) -> str:
    head = (
        f"| tool | version | import s (python -c pass) | ms per task, chain of {tasks} "
        f"(median of {repeat}; min-max) | run history |\n|---|---|--:|--:|---|"
    )
    rows = [
        f"| {r['tool']} | {r['version']} | {r['import_s']:.3f} ({r['pass_s']:.3f}) "
        f"| {r['per_task_ms']:.3f} ({r['per_task_ms_min']:.3f}-{r['per_task_ms_max']:.3f}) "
        f"| {r['history']} |"
        for r in results
    ]
    return "\n".join([head, *rows])


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--peers", default=DEFAULT_PEERS, help=f"comma-separated ({DEFAULT_PEERS})")
    p.add_argument("--tasks", type=int, default=100, help="tasks in the chain (100)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per tool (3)")
    p.add_argument("--import-runs", type=int, default=5, help="fresh processes per import (5)")
    p.add_argument("--keep", action="store_true", help="keep the temp dir with the venvs")
    p.add_argument("--json", type=Path, help="also write the results as JSON")
    args = p.parse_args()
    peers = [x.strip() for x in args.peers.split(",") if x.strip()]
    unknown = [x for x in peers if x not in PEERS]
    if unknown:
        p.error(f"unknown peer(s) {', '.join(unknown)}; choose from {', '.join(PEERS)}")

    root = Path(tempfile.mkdtemp(prefix="pipekit-peers-"))
    results: list[dict[str, Any]] = []
    skipped: list[str] = []
    try:
        env = child_env(root)
        ours = measure("pipekit", Path(sys.executable), "pipekit", args, env)
        if ours is not None:
            results.append(ours)
        for name in peers:
            packages, module = PEERS[name]
            python = make_venv(root, name, packages)
            got = measure(name, python, module, args, env) if python else None
            if got is None:
                skipped.append(name)
            else:
                results.append(got)
    finally:
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)

    print(
        f"machine: {os.cpu_count()} cores, {platform.python_implementation()} "
        f"{platform.python_version()}, {time.strftime('%Y-%m-%d')}"
    )
    print(table(results, args.tasks, args.repeat))
    if skipped:
        print(f"skipped (see messages above): {', '.join(skipped)}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
