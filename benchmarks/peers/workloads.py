"""The same no-op chain, written for each tool: ``python workloads.py TOOL --tasks N``.

Run inside the tool's own environment by ``run_peers.py``. Each workload builds a
chain of N tasks, task i returning task i-1's value + 1, runs it once untimed (to
import everything, start any server and create any database), then ``--repeat``
timed runs, each with a fresh definition where the tool needs one. It prints one
JSON line: the tool's version, the seconds of each timed run, and where the tool
kept its run history. Every tool's logging is turned down to WARNING, as pipekit's
is in bench.py.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any


def pipekit_chain(n: int, repeat: int) -> tuple[list[float], str]:
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    from pipekit import dag, task

    @task
    def step(x: int) -> int:
        return x + 1

    def body() -> None:
        ref = step(0)
        for _ in range(n - 1):
            ref = step(ref)

    d = dag(name="chain")(body)

    def once() -> None:
        run = d.run(executor="sequential")  # default store: SQLite in $PIPEKIT_HOME
        assert run.tasks[d.order[-1]].result == n, run

    return _timed(once, repeat), "SQLite file ($PIPEKIT_HOME/history.db), sequential executor"


def luigi_chain(n: int, repeat: int) -> tuple[list[float], str]:
    import luigi
    import luigi.mock

    logging.getLogger("luigi").setLevel(logging.WARNING)
    logging.getLogger("luigi-interface").setLevel(logging.WARNING)

    class Step(luigi.Task):  # type: ignore[misc]
        run_no = luigi.IntParameter()
        i = luigi.IntParameter()

        def requires(self) -> Any:
            return Step(run_no=self.run_no, i=self.i - 1) if self.i > 0 else []

        def output(self) -> Any:
            return luigi.mock.MockTarget(f"chain/{self.run_no}/{self.i}")

        def run(self) -> None:
            prev = 0
            if self.i > 0:
                with self.input().open("r") as f:
                    prev = int(f.read())
            with self.output().open("w") as f:
                f.write(str(prev + 1))

    runs = iter(range(repeat + 1))

    def once() -> None:
        run_no = next(runs)
        ok = luigi.build(
            [Step(run_no=run_no, i=n - 1)],
            local_scheduler=True,
            no_lock=True,
            log_level="WARNING",
        )
        assert ok, "luigi.build failed"

    return _timed(once, repeat), "in-memory MockTarget outputs, local scheduler (no history)"


def dagster_chain(n: int, repeat: int) -> tuple[list[float], str]:
    from dagster import job, op

    @op
    def source() -> int:
        return 0

    @op
    def step(x: int) -> int:
        return x + 1

    @job
    def chain() -> None:
        v = source()
        for i in range(n - 1):
            v = step.alias(f"step_{i}")(v)

    config = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}

    def once() -> None:
        result = chain.execute_in_process(run_config=config)
        assert result.success, "dagster run failed"

    return _timed(once, repeat), "execute_in_process, ephemeral (in-memory) instance"


def prefect_chain(n: int, repeat: int) -> tuple[list[float], str]:
    from prefect import flow, task

    @task
    def step(x: int) -> int:
        return x + 1

    @flow
    def chain() -> int:
        v = 0
        for _ in range(n):
            v = step(v)
        return v

    def once() -> None:
        assert chain() == n

    return _timed(once, repeat), "ephemeral Prefect server, SQLite in $PREFECT_HOME"


_AIRFLOW_DAG = """
from datetime import datetime

from airflow.sdk import dag, task

N = {n}


@task
def step(x: int) -> int:
    return x + 1


@dag(dag_id="pipekit_peers_chain", schedule=None, start_date=datetime(2025, 1, 1), catchup=False)
def chain() -> None:
    v = step(0)
    for _ in range(N - 1):
        v = step(v)


the_dag = chain()
"""


def airflow_chain(n: int, repeat: int) -> tuple[list[float], str]:
    import importlib.util
    import subprocess
    from pathlib import Path

    # Airflow 3.1's dag.test() runs the DAG as serialized from its file, so the DAG is
    # written to a file of its own in a dags folder (defined here, it could not be parsed).
    folder = Path(tempfile.mkdtemp(prefix="pipekit-peers-airflow-dags-"))
    path = folder / "pipekit_peers_chain.py"
    path.write_text(_AIRFLOW_DAG.format(n=n))
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(folder)
    # dag.test() needs the metadata database (SQLite in $AIRFLOW_HOME by default).
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True
    )
    spec = importlib.util.spec_from_file_location("pipekit_peers_chain", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    d = module.the_dag

    def once() -> None:
        run = d.test()
        assert str(getattr(run, "state", "success")).endswith("success"), run

    return _timed(once, repeat), "dag.test(), SQLite metadata DB in $AIRFLOW_HOME"


WORKLOADS: dict[str, tuple[str, Callable[[int, int], tuple[list[float], str]]]] = {
    "pipekit": ("pipekit", pipekit_chain),
    "luigi": ("luigi", luigi_chain),
    "dagster": ("dagster", dagster_chain),
    "prefect": ("prefect", prefect_chain),
    "airflow": ("apache-airflow", airflow_chain),
}


def _timed(once: Callable[[], None], repeat: int) -> list[float]:
    once()  # untimed: imports, servers, databases
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        once()
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("tool", choices=list(WORKLOADS))
    p.add_argument("--tasks", type=int, default=100)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    dist, workload = WORKLOADS[args.tool]
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    with tempfile.TemporaryDirectory(prefix=f"peer-{args.tool}-") as home:
        for var in ("PIPEKIT_HOME", "PREFECT_HOME", "AIRFLOW_HOME", "DAGSTER_HOME"):
            os.environ.setdefault(var, os.path.join(home, var.lower()))
            os.makedirs(os.environ[var], exist_ok=True)
        times, history = workload(args.tasks, args.repeat)
    doc = {
        "tool": args.tool,
        "version": importlib.metadata.version(dist),
        "tasks": args.tasks,
        "seconds": times,
        "history": history,
    }
    sys.stdout.write(json.dumps(doc) + "\n")


if __name__ == "__main__":
    main()
