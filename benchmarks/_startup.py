"""Targets 1 and 2: wall time of fresh Python processes.

Each command runs in a fresh interpreter, once untimed (to fill the bytecode cache,
see :func:`_harness.warm_bytecode`), then ``repeat`` times, interleaved; the median
counts. The floor is ``python -c "pass"``:

* ``python -c "import pipekit"``;
* a script that configures structlog to drop events below WARNING, defines
  extract -> transform -> load, runs it once with the default store (SQLite history
  in ``$PIPEKIT_HOME``, a new temp dir per run) and the default executor (threads),
  and exits;
* the same script without the structlog configuration (information: structlog's
  default prints every event, here to a pipe).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from _harness import QUIET_LOGGING, Figure, progress

FULL = {"repeat": 15}
QUICK = {"repeat": 5}

DAG_SCRIPT = """
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
    "pass": "pass",
    "import": "import pipekit",
    "dag": QUIET_LOGGING + DAG_SCRIPT,
    "dag_default_logging": DAG_SCRIPT,
}


def run_once(code: str) -> float:
    """Wall time of one fresh interpreter running ``code``, with a new PIPEKIT_HOME."""
    import time

    with tempfile.TemporaryDirectory(prefix="pipekit-bench-") as home:
        env = {**os.environ, "PIPEKIT_HOME": home}
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
        )
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"command failed ({proc.returncode}):\n{code}\n{proc.stderr}")
        if "etl.run()" in code and not os.path.exists(os.path.join(home, "history.db")):
            raise SystemExit("the DAG run wrote no history.db in PIPEKIT_HOME")
    return elapsed


def measure(quick: bool, repeat: int | None) -> list[Figure]:
    reps = repeat or (QUICK if quick else FULL)["repeat"]
    for code in COMMANDS.values():
        run_once(code)
    times: dict[str, list[float]] = {label: [] for label in COMMANDS}
    progress(f"start-up: {len(COMMANDS)} commands x {reps} fresh processes")
    for _ in range(reps):
        for label, code in COMMANDS.items():
            times[label].append(run_once(code))
    floor = Figure("", "", "", "s", times["pass"]).median
    common = {"floor": floor, "floor_name": "python -c pass"}
    return [
        Figure("startup.pass", "1", 'python -c "pass" (floor)', "s", times["pass"], **common),
        Figure(
            "startup.import",
            "1",
            'python -c "import pipekit"',
            "s",
            times["import"],
            limit=0.15,
            **common,
        ),
        Figure(
            "startup.dag",
            "2",
            "fresh process: define a 3-task DAG, run it once (SQLite), exit",
            "s",
            times["dag"],
            limit=0.5,
            **common,
        ),
        Figure(
            "startup.dag_default_logging",
            "2",
            "the same, structlog unconfigured (prints every event) (info)",
            "s",
            times["dag_default_logging"],
            **common,
        ),
    ]


def import_profile(top: int = 15) -> str:
    """The modules with the largest cumulative import time (python -X importtime)."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import pipekit"],
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
    out = [f"import pipekit, top {top} modules by cumulative import time (-X importtime):"]
    for cum, self_t, name in rows[:top]:
        out.append(f"  {cum / 1000:8.2f} ms cumulative  {self_t / 1000:7.2f} ms self  {name}")
    return "\n".join(out)
