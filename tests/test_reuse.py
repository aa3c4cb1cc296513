"""What a backfill shares across its dates, and what the group commit does for a busy task.

A backfill keeps one executor per thread up from date to date (threads or worker
processes are not started again for each date) and one group-commit writer; a task
that runs for a while inside the loop's own thread still has its start committed by
the shared flusher thread, as the 50 ms promise says.
"""

from __future__ import annotations

import os
import random
import signal
from collections.abc import Iterator
from pathlib import Path

import pendulum
import pytest

from pipekit import backfill
from pipekit.stores import MemoryStore, SQLiteStore
from tests.dags import backfillable as dags
from tests.dags import workers
from tests.dags.backfillable import backfillable


def test_a_backfill_keeps_its_worker_process_from_date_to_date(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "h.db")
    report = backfill(
        workers.in_process,
        "2024-01-01",
        "2024-01-04",
        executor="processes",
        max_workers=1,
        store=store,
        progress=False,
    )
    pids = {run.tasks["pid"].result for run in report.runs.values()}
    assert report.ok
    assert len(pids) == 1 and os.getpid() not in pids
    assert len(store.list_runs(state="success")) == 4  # committed before backfill returned
    store.close()


def test_a_backfill_keeps_its_threads_from_date_to_date() -> None:
    workers.THREADS.clear()
    report = backfill(
        workers.two_threads,
        "2024-01-01",
        "2024-01-05",
        executor="threads",
        max_workers=2,
        store=MemoryStore(),
        progress=False,
    )
    assert report.ok
    assert len(workers.THREADS) == 10
    assert len(set(workers.THREADS)) <= 2  # five dates, the same two worker threads
    workers.THREADS.clear()


@pytest.fixture
def clean_dags() -> Iterator[None]:
    """Reset the backfill DAGs' hooks and call log around a test."""
    dags.reset()
    yield
    dags.reset()


def test_a_second_ctrl_c_interrupts_the_running_date_and_still_returns_a_report(
    clean_dags: None,
) -> None:
    """First Ctrl-C: finish the date, launch no more; a second: interrupt the date too."""

    def interrupt_twice(day: str) -> None:
        if day == "2024-01-02":
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)

    dags.HOOKS["load"] = interrupt_twice
    store = MemoryStore()
    try:
        report = backfill(
            backfillable,
            "2024-01-01",
            "2024-01-04",
            executor="sequential",
            store=store,
            progress=False,
        )
    except KeyboardInterrupt:  # without this, a regression would end the whole test session
        pytest.fail("KeyboardInterrupt escaped pipekit.backfill")
    assert [d.isoformat() for d in report.succeeded] == ["2024-01-01"]
    assert [d.isoformat() for d in report.failed] == ["2024-01-02"]
    assert [d.isoformat() for d in report.not_run] == ["2024-01-03", "2024-01-04"]
    interrupted = [r for r in store.list_runs() if r.state == "failed"]
    assert len(interrupted) == 1
    assert interrupted[0].tasks["load"].error == "run interrupted by KeyboardInterrupt"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back
    assert report.runs[pendulum.Date(2024, 1, 2)].id == interrupted[0].id
    assert f"2024-01-02: KeyboardInterrupt  [run {interrupted[0].id}]" in str(report)

    # rerun_failed() resumes the interrupted run (its extract and transform are done)
    dags.HOOKS.clear()
    dags.CALLS.clear()
    again = report.rerun_failed()
    assert [d.isoformat() for d in again.succeeded] == ["2024-01-02", "2024-01-03", "2024-01-04"]
    assert dags.calls_of("extract") == ["2024-01-03", "2024-01-04"]
    assert dags.calls_of("load") == ["2024-01-02", "2024-01-03", "2024-01-04"]
    assert again.runs[pendulum.Date(2024, 1, 2)].id == interrupted[0].id
    assert len(store.list_runs()) == 4


def test_a_task_running_in_the_loop_thread_sees_its_start_committed(tmp_path: Path) -> None:
    """The sequential executor runs the task in the loop's thread; the flusher commits."""
    path = tmp_path / "h.db"
    workers.HISTORY[:] = [str(path)]
    store = SQLiteStore(path)
    run = workers.holds_until_recorded.run(executor="sequential", store=store)
    assert run.tasks["wait_for_own_record"].state == "success"
    store.close()


def test_run_ids_stay_unique_when_a_program_seeds_random() -> None:
    """Run ids draw from pipekit's own generator: random.seed() in a program cannot repeat one."""
    store = MemoryStore()
    ids: set[str] = set()
    for _ in range(3):
        random.seed(1234)
        ids.add(_one_run_id(store))
    assert len(ids) == 3


def _one_run_id(store: MemoryStore) -> str:
    return backfillable.run(ds="2024-01-01", region="eu", store=store, executor="sequential").id
