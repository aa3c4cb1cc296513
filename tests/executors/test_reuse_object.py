"""One executor object serving run after run (README: "one run at a time").

Each run ends with ``shutdown()``; the next run's ``start()`` must get the executor
going again, and nothing left over from the earlier run (retired workers, their
reader threads, cancelled keys) may touch the next one.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import pipekit
from pipekit.context import TaskContext
from pipekit.executors import Executor, Job, Outcome, SequentialExecutor, ThreadsExecutor
from pipekit.stores.memory import MemoryStore

from .pipelines import calls, chain, daily_perishing, failing, perishing

WAIT = 2.0
"""Upper bound, in seconds, on waiting for an outcome; passing tests never wait this long."""

WORKER_DEATH_LIMIT = 30.0
"""Seconds a run whose worker dies may take at most (the bug made it hang for good)."""


@pytest.fixture
def engine(request: pytest.FixtureRequest) -> Iterator[Executor]:
    """An executor *object* of the kind named by the parameter, closed afterwards."""
    name: str = request.param
    made: Any
    if name == "sequential":
        made = SequentialExecutor()
    elif name == "threads":
        made = ThreadsExecutor(1)
    elif name == "processes":
        from pipekit.executors.processes import ProcessesExecutor

        made = ProcessesExecutor(1)
    else:
        cluster = request.getfixturevalue("dask_cluster")
        from pipekit.executors.dask import DaskExecutor

        made = DaskExecutor(cluster.scheduler_address)
    yield made
    close = getattr(made, "close", None)
    if callable(close):
        if name == "dask":
            made.client.wait_for_workers(2, timeout=30)  # the killed worker is back
        close()


every_object = pytest.mark.parametrize(
    "engine", ["sequential", "threads", "processes", "dask"], indirect=True
)


@every_object
def test_a_second_run_on_one_object_reports_its_failure(
    engine: Executor, store: MemoryStore, workdir: str
) -> None:
    """Run 1 succeeds; run 2 on the same object fails its broken task; run 3 succeeds."""
    first = chain.run(executor=engine, store=store, workdir=workdir)
    assert first.state == "success"
    second = failing.run(executor=engine, store=store, workdir=workdir, raise_on_failure=False)
    assert second.state == "failed"
    error = second.tasks["broken"].error
    assert error is not None
    assert error.startswith("ValueError: broken on purpose")
    assert second.tasks["source"].result == 7
    third = chain.run(executor=engine, store=store, workdir=workdir)
    assert third.tasks["double__1"].result == 20
    assert calls(workdir).count("source") == 3


@pytest.mark.parametrize("engine", ["processes", "dask"], indirect=True)
def test_a_worker_dying_in_a_second_run_on_one_object_fails_its_attempt(
    engine: Executor, store: MemoryStore, workdir: str
) -> None:
    """After a first run, a worker that dies in the next run is reported, not waited for."""
    assert chain.run(executor=engine, store=store, workdir=workdir).state == "success"
    outcome: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def second_run() -> None:
        try:
            outcome.put(
                perishing.run(executor=engine, store=store, workdir=workdir, raise_on_failure=False)
            )
        except BaseException as exc:  # pragma: no cover - only on a regression
            outcome.put(exc)

    threading.Thread(target=second_run, daemon=True).start()
    run = outcome.get(timeout=WORKER_DEATH_LIMIT)  # raises queue.Empty if the run hangs
    assert not isinstance(run, BaseException), run
    died = run.tasks["perish"]
    assert died.state == "failed"
    assert died.error is not None
    assert died.error.startswith("WorkerDied:")
    assert run.tasks["source"].result == 9


def test_a_backfill_given_a_processes_object_reports_a_worker_death() -> None:
    """A backfill runs date after date on the object; a death on date 2 fails only date 2."""
    from pipekit.executors.processes import ProcessesExecutor

    engine = ProcessesExecutor(1)
    outcome: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def backfill() -> None:
        try:
            outcome.put(
                pipekit.backfill(
                    daily_perishing,
                    "2024-01-01",
                    "2024-01-03",
                    executor=engine,
                    store=MemoryStore(),
                    progress=False,
                )
            )
        except BaseException as exc:  # pragma: no cover - only on a regression
            outcome.put(exc)

    threading.Thread(target=backfill, daemon=True).start()
    report = outcome.get(timeout=WORKER_DEATH_LIMIT)  # raises queue.Empty if it hangs
    assert not isinstance(report, BaseException), report
    states = [run.state for _, run in sorted(report.runs.items())]
    assert states == ["success", "failed", "success"]
    died = sorted(report.runs.items())[1][1].tasks["perish_on_the_2nd"]
    assert died.error is not None
    assert died.error.startswith("WorkerDied:")


# -- the threads executor, job by job -------------------------------------------------------


def _job(key: int, fn: Callable[[], object]) -> Job:
    return Job(key, fn, (), {}, TaskContext("run", "dag", f"task{key}", 1, {}))


def _workers() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "pipekit-worker"}


def test_threads_of_a_shut_down_run_never_take_the_next_runs_jobs() -> None:
    """Idle threads woken by shutdown() exit; the next run's job gets a thread of its own."""
    executor = ThreadsExecutor(1)
    first: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
    executor.start(first.put)
    executor.submit(_job(0, lambda: "first"))
    assert first.get(timeout=WAIT).value == "first"
    deadline = time.monotonic() + WAIT
    while not executor._idle and time.monotonic() < deadline:
        time.sleep(0.001)
    old = _workers()
    executor.shutdown()
    second: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
    executor.start(second.put)
    gate = threading.Event()
    ran_on: list[threading.Thread] = []

    def blocked() -> str:
        ran_on.append(threading.current_thread())
        gate.wait(WAIT)
        return "late"

    executor.submit(_job(1, blocked))
    deadline = time.monotonic() + WAIT
    while not ran_on and time.monotonic() < deadline:
        time.sleep(0.001)
    assert ran_on and ran_on[0] not in old  # not a thread the shutdown told to exit
    executor.cancel(1)  # as on a timeout: the thread is abandoned, the count stays sane
    assert executor._threads == 0
    executor.submit(_job(2, lambda: "fresh"))
    assert second.get(timeout=WAIT).value == "fresh"
    gate.set()
    executor.shutdown()
    assert first.empty()


def test_a_key_cancelled_in_an_earlier_run_is_reported_in_the_next() -> None:
    """Keys are unique within a run only: a key abandoned in run 1 still reports in run 2."""
    executor = ThreadsExecutor(2)
    first: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
    executor.start(first.put)
    gate = threading.Event()
    started = threading.Event()
    executor.submit(_job(7, lambda: started.set() or gate.wait(WAIT)))
    assert started.wait(WAIT)
    executor.cancel(7)  # timed out: its thread is abandoned, still blocked
    executor.shutdown()
    second: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
    executor.start(second.put)
    executor.submit(_job(7, lambda: "again"))
    try:
        assert second.get(timeout=WAIT).value == "again"
    finally:
        gate.set()
        executor.shutdown()
    assert first.empty()
