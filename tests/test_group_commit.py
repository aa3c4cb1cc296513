"""The group-commit writer: errors surface to the run they stop, and only to it.

The run loop commits its own batches when it is busy and a flusher thread commits for
it when it is blocked (``pipekit/_writer.py``). These tests drive a ``GroupCommit``
with stores that fail or block on purpose, and whole runs whose store fails or whose
commit is interrupted by Ctrl-C.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from pipekit import State, StoreError, backfill, dag, task
from pipekit._writer import GroupCommit
from pipekit.stores import MemoryStore, SQLiteStore
from pipekit.stores.base import AttemptStarted, Change, RunStarted

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
WAIT = 5.0


def _started(run_id: str, task_id: str = "t") -> list[Change]:
    return [RunStarted(run_id, "d", {}, [task_id], T0), AttemptStarted(run_id, task_id, 1, T0)]


class Gate(MemoryStore):
    """A store whose record() can be made to wait on an event, then fail."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()
        self.fail_runs: set[str] = set()
        self.block_runs: set[str] = set()

    def record(self, changes: Sequence[Change]) -> None:
        runs = {c.run_id for c in changes}
        if runs & self.block_runs:
            self.entered.set()
            assert self.release.wait(WAIT)
        if runs & self.fail_runs:
            raise StoreError(f"cannot write {sorted(runs & self.fail_runs)}")
        super().record(changes)


def test_a_failure_in_the_flusher_thread_reaches_flush_and_stops_only_that_run() -> None:
    store = Gate()
    store.block_runs = store.fail_runs = {"bad"}
    writer = GroupCommit(store)
    writer.record(_started("bad"))  # the loop goes quiet: the flusher takes the batch
    assert store.entered.wait(WAIT)
    store.release.set()
    with pytest.raises(StoreError, match="bad"):
        writer.flush("bad")
    with pytest.raises(StoreError, match="bad"):  # no hole: later changes are refused
        writer.record([AttemptStarted("bad", "t", 2, T0)])
    writer.record(_started("good"))  # another run's history goes on
    writer.flush("good")
    assert store.get_run("good").tasks["t"].state == State.RUNNING
    assert set(writer.errors()) == {"bad"}
    writer.close()


def test_a_batch_mixing_runs_is_applied_run_by_run_when_it_fails() -> None:
    store = Gate()
    store.fail_runs = {"bad"}
    writer = GroupCommit(store)
    writer.record(_started("good"))
    writer.record(_started("bad"))
    writer.close()  # one batch with both runs: it fails, then each run is tried alone
    assert store.get_run("good").tasks["t"].state == State.RUNNING
    with pytest.raises(StoreError):
        store.get_run("bad")
    assert list(writer.errors()) == ["bad"]


def test_one_slow_commit_does_not_hold_up_another_writers_changes() -> None:
    """Each writer has its own flusher: B commits while A's commit is stuck."""
    slow, quick = Gate(), Gate()
    slow.block_runs = {"a"}
    a, b = GroupCommit(slow), GroupCommit(quick)
    a.record(_started("a"))
    assert slow.entered.wait(WAIT)  # A's flusher is inside a commit that does not end
    b.record(_started("b"))
    committed = threading.Event()

    def watch() -> None:
        while not committed.is_set():
            try:
                quick.get_run("b")
                committed.set()
            except StoreError:
                threading.Event().wait(0.002)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    assert committed.wait(WAIT), "B's change waited for A's stuck commit"
    slow.release.set()
    a.close()
    b.close()
    assert slow.get_run("a").tasks["t"].state == State.RUNNING


@task
def step(x: int) -> int:
    return x + 1


@task
def first() -> int:
    return 0


class InterruptedOnce(MemoryStore):
    """Sends the process SIGINT from inside the first multi-change commit of the main thread."""

    armed = True

    def record(self, changes: Sequence[Change]) -> None:
        if (
            self.armed
            and len(changes) > 2
            and threading.current_thread() is threading.main_thread()
        ):
            self.armed = False
            os.kill(os.getpid(), signal.SIGINT)
        super().record(changes)


def test_ctrl_c_during_a_commit_is_held_until_it_ends_and_the_run_is_recorded_failed() -> None:
    failures: list[Any] = []

    @dag(on_failure=[failures.append])
    def chain() -> None:
        x = first()
        for _ in range(2000):
            x = step(x)

    store = InterruptedOnce()
    with pytest.raises(KeyboardInterrupt):
        chain.run(executor="sequential", store=store)
    (run,) = store.list_runs(dag="chain")
    assert run.state == State.FAILED
    assert run.error == "run interrupted by KeyboardInterrupt"
    assert len(failures) == 1
    succeeded = [t for t, r in run.tasks.items() if r.state == State.SUCCESS]
    assert succeeded  # the interrupted commit was completed, not thrown away
    assert store.attempts(run.id)  # and every attempt it recorded is there


class FailsOneDate(SQLiteStore):
    """Refuses, every time, any batch holding the run of 2024-01-03."""

    def record(self, changes: Sequence[Change]) -> None:
        bad = {
            c.run_id for c in changes if isinstance(c, RunStarted) and "2024-01-03" in str(c.params)
        }
        self.bad = getattr(self, "bad", set()) | bad
        if {c.run_id for c in changes} & self.bad:
            raise StoreError("disk full for this run")
        super().record(changes)


@task
def work(ds: dt.date) -> str:
    return ds.isoformat()


@dag
def daily(ds: dt.date) -> None:
    work(ds)


def test_a_date_whose_history_cannot_be_written_fails_alone_and_the_report_is_returned(
    tmp_path: Path,
) -> None:
    store = FailsOneDate(tmp_path / "h.db")
    report = backfill(
        daily, "2024-01-01", "2024-01-05", executor="sequential", store=store, progress=False
    )
    assert [d.isoformat() for d in report.failed] == ["2024-01-03"]
    assert "disk full for this run" in (report.dates[dt.date(2024, 1, 3)].error or "")
    recorded = sorted(str(r.params["ds"]) for r in store.list_runs(state="success"))
    assert recorded == ["2024-01-01", "2024-01-02", "2024-01-04", "2024-01-05"]
    store.close()


def test_run_callbacks_of_a_backfill_date_see_the_run_committed(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "h.db")
    seen: list[str] = []

    @dag(on_success=[lambda event: seen.append(str(store.get_run(event.run_id).state))])
    def noted(ds: dt.date) -> None:
        work(ds)

    report = backfill(noted, "2024-01-01", "2024-01-03", store=store, progress=False)
    assert report.ok
    assert seen == ["success", "success", "success"]
    store.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_neither_hangs_nor_writes_its_parents_queued_changes(
    tmp_path: Path,
) -> None:
    """A task that forks (multiprocessing's 'fork') and runs a DAG in the child."""
    warm = GroupCommit(MemoryStore())
    warm.record(_started("warm"))  # a flusher thread is up in the parent at fork time
    parent_store = SQLiteStore(tmp_path / "parent.db")
    parent = GroupCommit(parent_store)
    parent.record(_started("parent"))  # queued, not committed, when the process forks
    pid = os.fork()
    if pid == 0:  # the child: its own writer, its own store, then out
        code = 1
        try:
            child_store = SQLiteStore(tmp_path / "child.db")
            child = GroupCommit(child_store)
            child.record(_started("child"))
            child.flush("child")
            child.close()
            code = 0
        finally:
            os._exit(code)
    deadline = threading.Event()
    for _ in range(int(WAIT / 0.01)):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        deadline.wait(0.01)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung")
    assert os.waitstatus_to_exitcode(status) == 0
    parent.flush("parent")
    parent.close()
    warm.close()
    assert [a.task_id for a in parent_store.attempts("parent")] == ["t"]  # written once
    child_store = SQLiteStore(tmp_path / "child.db")
    assert [r.id for r in child_store.list_runs()] == ["child"]
    child_store.close()
    parent_store.close()
