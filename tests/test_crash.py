"""A 10,000-task run killed with SIGKILL at random moments leaves a readable, truthful history."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import pipekit
from pipekit.stores import SQLiteStore
from tests.dags import crashable as crash_dag
from tests.dags.crashable import LAYERS, WIDTH, crashable

ROOT = Path(__file__).resolve().parents[1]
KILLS = 10


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
def test_random_sigkills_never_record_unfinished_successes_and_rerun_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ten kills at random moments: history readable, no false success, re-run completes."""
    rng = random.Random(20261125)
    partial = 0  # kills that landed with part of the DAG recorded as done
    code = (
        "import logging, structlog\n"
        "structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))\n"
        "from pipekit.stores import SQLiteStore\n"
        "from tests.dags.crashable import crashable\n"
        "import sys\n"
        "print('START', flush=True)\n"
        "crashable.run(store=SQLiteStore(sys.argv[1]), executor='sequential')\n"
    )
    for attempt in range(KILLS):
        db = tmp_path / f"h{attempt}.db"
        log = tmp_path / f"done{attempt}.log"
        env = {**os.environ, "CRASH_LOG": str(log)}
        proc = subprocess.Popen(
            [sys.executable, "-c", code, str(db)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "START"
            # Kill once a random number of tasks have finished: always mid-run.
            target = rng.randrange(1, LAYERS * WIDTH - 1)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and proc.poll() is None:
                if log.exists() and log.read_bytes().count(b"\n") >= target:
                    break
                time.sleep(0.001)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            if proc.stdout is not None:
                proc.stdout.close()

        finished = set(log.read_text().split()) if log.exists() else set()
        store = SQLiteStore(db)
        try:
            runs = store.list_runs(dag="crashable")
            if not runs:  # killed before the first batch was committed: nothing to check
                continue
            (run,) = runs
            succeeded = {t for t, r in run.tasks.items() if r.state == "success"}
            assert succeeded <= finished, "a task is recorded as succeeded but never finished"
            partial += 0 < len(succeeded) < LAYERS * WIDTH
            assert run.state in ("running", "success")
            monkeypatch.setenv("CRASH_LOG", str(log))
            while crash_dag._fd:  # the fixture caches its log file descriptor
                os.close(crash_dag._fd.pop())
            again = pipekit.rerun(run.id, store=store, executor="sequential")
            assert again.state == "success"
            assert all(r.state == "success" for r in again.tasks.values())
            assert len(again.tasks) == LAYERS * WIDTH
            assert again.tasks[f"l{LAYERS - 1}_0"].result == LAYERS
            assert store.get_run(run.id).state == "success"
            assert set(log.read_text().split()) == set(crashable.order)
        finally:
            store.close()
            while crash_dag._fd:
                os.close(crash_dag._fd.pop())
    assert partial >= 3, f"only {partial} of {KILLS} kills landed mid-run"
