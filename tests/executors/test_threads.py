"""The threads executor: abandoning timed-out threads without losing capacity.

A thread cannot be killed, so a timed-out attempt's thread is abandoned and a
replacement started; these tests pin that the pool neither shrinks nor grows, and
that an abandoned attempt's late outcome is never reported. The pool wakes one
worker at a time and starts threads only as work needs them: the tests below also
pin that blocking jobs still each get a thread, and that the pool does not grow
past what the work needs.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
import types
from collections.abc import Callable

import pytest

from pipekit import dag, task
from pipekit.context import TaskContext
from pipekit.executors import Job, Outcome, ThreadsExecutor
from pipekit.stores.memory import MemoryStore

from .pipelines import calls, gathering, hang, source

WAIT = 2.0
"""Upper bound, in seconds, on waiting for a worker thread; passing tests never wait this long."""


def _job(key: int, fn: Callable[[], object]) -> Job:
    return Job(key, fn, (), {}, TaskContext("run", "dag", f"task{key}", 1, {}))


def _started(max_workers: int) -> tuple[ThreadsExecutor, queue.SimpleQueue[Outcome]]:
    """A started executor of ``max_workers`` threads and the queue its outcomes go to."""
    executor = ThreadsExecutor(max_workers)
    outcomes: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
    executor.start(outcomes.put)
    return executor, outcomes


class _Blocker:
    """A job body that says when it started, then waits for its gate and returns ``value``."""

    def __init__(self, value: str) -> None:
        self.value = value
        self.started, self.gate = threading.Event(), threading.Event()
        self.threads: list[threading.Thread] = []  # the threads that ran it

    def __call__(self) -> str:
        self.threads.append(threading.current_thread())
        self.started.set()
        self.gate.wait(WAIT)
        return self.value


@dag
def stuck_twice(workdir: str) -> None:
    """Two blocked tasks, then two that finish at once; all independent."""
    hang(workdir)
    hang(workdir)
    source(workdir, 1)
    source(workdir, 2)


def test_timed_out_threads_are_replaced(store: MemoryStore, workdir: str) -> None:
    """With max_workers=1, tasks queued behind two timed-out ones still run, each in turn."""
    started = time.monotonic()
    run = stuck_twice.run(
        executor="threads", store=store, workdir=workdir, max_workers=1, raise_on_failure=False
    )
    elapsed = time.monotonic() - started
    assert [run.tasks[t].state for t in ("hang", "hang__1")] == ["failed", "failed"]
    assert [run.tasks[t].result for t in ("source", "source__1")] == [1, 2]
    # Both blocked attempts started and were abandoned, not waited for.
    assert calls(workdir) == ["hang", "hang", "source", "source"]
    assert elapsed < 1.5  # each blocked task would hold the run for 30 s


def test_independent_tasks_overlap(store: MemoryStore, workdir: str) -> None:
    """With enough workers, four independent tasks all run at the same time."""
    run = gathering.run(executor="threads", store=store, workdir=workdir, max_workers=4)
    assert [r.result for r in run.tasks.values()] == [4, 4, 4, 4]


def test_cancelled_attempt_is_never_reported() -> None:
    """An abandoned attempt that ends later reports nothing; its replacement takes new jobs."""
    executor, outcomes = _started(1)
    blocked = _Blocker("late")
    executor.submit(_job(0, blocked))
    assert blocked.started.wait(WAIT)
    executor.cancel(0)
    executor.submit(_job(1, lambda: "fresh"))
    assert outcomes.get(timeout=WAIT).value == "fresh"
    blocked.gate.set()
    blocked.threads[0].join(WAIT)
    assert not blocked.threads[0].is_alive()
    executor.shutdown()
    assert outcomes.empty()


def _workers() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "pipekit-worker"}


def test_cancel_after_the_outcome_leaves_no_thread_behind() -> None:
    """cancel() racing a just-reported outcome does not leave a worker thread after shutdown."""
    before = _workers()
    executor, outcomes = _started(2)
    executor.submit(_job(0, lambda: "done"))
    assert outcomes.get(timeout=WAIT).ok
    executor.cancel(0)  # what the run loop does when the deadline passes as the outcome arrives
    executor.shutdown()
    mine = _workers() - before
    for thread in mine:
        thread.join(0.2)
    assert [t for t in mine if t.is_alive()] == []


@task(timeout=0.3)
def quits() -> None:
    sys.exit(3)


@dag
def quitting() -> None:
    quits()


def test_system_exit_in_a_task_fails_it(store: MemoryStore) -> None:
    """A task calling sys.exit() fails with an error naming SystemExit instead of being lost."""
    run = quitting.run(executor="threads", store=store, raise_on_failure=False)
    quit_run = run.tasks["quits"]
    assert quit_run.state == "failed"
    assert quit_run.error is not None
    assert "SystemExit" in quit_run.error


RAN_IN: list[str] = []


@task
def where(n: int) -> int:
    RAN_IN.append(threading.current_thread().name)
    return n


@task(timeout=5)
def where_timed(n: int) -> int:
    RAN_IN.append(threading.current_thread().name)
    return n


@dag
def three_at_once() -> None:
    where(1)
    where(2)
    where_timed(3)


def test_one_worker_runs_untimed_tasks_in_the_loop_thread(store: MemoryStore) -> None:
    """max_workers=1 can run nothing in parallel: no hand-off, except for a timeout."""
    RAN_IN.clear()
    run = three_at_once.run(executor="threads", max_workers=1, store=store)
    assert [run.tasks[t].result for t in ("where", "where__1", "where_timed")] == [1, 2, 3]
    me = threading.current_thread().name
    assert sorted(RAN_IN) == sorted([me, me, "pipekit-worker"])


def _wait_idle(executor: ThreadsExecutor, n: int) -> None:
    """Wait until ``n`` workers sleep, waiting for work (the pool's private idle list)."""
    deadline = time.monotonic() + WAIT
    while len(executor._idle) < n and time.monotonic() < deadline:
        time.sleep(0.001)
    assert len(executor._idle) == n


def test_jobs_submitted_together_that_block_each_get_a_thread() -> None:
    """Four jobs that wait for each other all finish: each is woken onto its own thread."""
    executor, outcomes = _started(4)
    barrier = threading.Barrier(4, timeout=WAIT)
    for key in range(4):
        executor.submit(_job(key, barrier.wait))
    results = [outcomes.get(timeout=WAIT) for _ in range(4)]
    executor.shutdown()
    assert sorted(o.key for o in results) == [0, 1, 2, 3]
    assert all(o.ok for o in results), [o.error_text for o in results]


def test_one_job_at_a_time_keeps_one_thread() -> None:
    """Jobs submitted one after another, each after the last ended, run on a single thread."""
    before = _workers()
    executor, outcomes = _started(4)
    ran_on: list[threading.Thread] = []
    for key in range(6):
        executor.submit(_job(key, lambda: ran_on.append(threading.current_thread())))
        assert outcomes.get(timeout=WAIT).ok
        _wait_idle(executor, 1)
    started = _workers() - before
    executor.shutdown()
    assert len(set(ran_on)) == 1
    assert len(started) == 1


def test_every_job_of_repeated_bursts_is_reported_once() -> None:
    """Bursts of short jobs, one executor reused across runs: each job gets one outcome."""
    executor = ThreadsExecutor(3)
    for run in range(20):
        outcomes: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        executor.start(outcomes.put)  # as a backfill does for each date
        keys = range(run * 3, run * 3 + 3)
        for key in keys:
            executor.submit(_job(key, lambda key=key: key))
        results = [outcomes.get(timeout=WAIT) for _ in keys]
        assert sorted(o.value for o in results) == list(keys)
        assert outcomes.empty()
    executor.shutdown()


def test_a_job_queued_behind_an_abandoned_one_runs_on_its_replacement() -> None:
    """Cancelling the only worker's job starts a thread for the job waiting behind it."""
    executor, outcomes = _started(1)
    blocked = _Blocker("late")
    executor.submit(_job(0, blocked))
    assert blocked.started.wait(WAIT)
    executor.submit(_job(1, lambda: "queued"))
    executor.cancel(0)
    assert outcomes.get(timeout=WAIT).value == "queued"
    blocked.gate.set()
    executor.shutdown()


def test_shutdown_ends_idle_and_busy_workers() -> None:
    """After shutdown an idle worker exits at once, a busy one once it has reported its job."""
    before = _workers()
    executor, outcomes = _started(2)
    blocked = _Blocker("finished")
    executor.submit(_job(0, blocked))
    assert blocked.started.wait(WAIT)
    executor.submit(_job(1, lambda: "quick"))
    assert outcomes.get(timeout=WAIT).value == "quick"
    _wait_idle(executor, 1)
    mine = _workers() - before
    assert len(mine) == 2
    executor.shutdown()
    blocked.gate.set()
    assert outcomes.get(timeout=WAIT).value == "finished"
    for thread in mine:
        thread.join(WAIT)
    assert [t for t in mine if t.is_alive()] == []


class _NoSecondThread(threading.Thread):
    """A worker thread class whose second start fails, as at the system's thread limit."""

    starts = 0

    def start(self) -> None:
        type(self).starts += 1
        if type(self).starts >= 2:
            raise RuntimeError("can't start new thread")
        super().start()


def test_a_thread_that_cannot_start_leaves_queued_jobs_to_the_busy_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At the thread limit, jobs wait for the worker there is instead of being lost."""
    import pipekit.executors.threads as threads_module

    _NoSecondThread.starts = 0
    shim = types.SimpleNamespace(Thread=_NoSecondThread, Lock=threading.Lock)
    monkeypatch.setattr(threads_module, "threading", shim)
    executor, outcomes = _started(2)
    first = _Blocker("first")  # busy until the second job is queued: it needs a thread
    executor.submit(_job(1, first))
    assert first.started.wait(WAIT)
    executor.submit(_job(2, lambda: "second"))
    first.gate.set()
    values = sorted(outcomes.get(timeout=WAIT).value for _ in range(2))
    executor.shutdown()
    assert values == ["first", "second"]
    assert _NoSecondThread.starts >= 2  # the failing start was tried


def test_no_thread_at_all_fails_the_submit_and_queues_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When not even the first thread starts, submit() raises and keeps no job."""
    import pipekit.executors.threads as threads_module

    _NoSecondThread.starts = 1  # the next start fails
    shim = types.SimpleNamespace(Thread=_NoSecondThread, Lock=threading.Lock)
    monkeypatch.setattr(threads_module, "threading", shim)
    executor = ThreadsExecutor(2)
    executor.start(lambda outcome: None)
    with pytest.raises(RuntimeError, match="can't start new thread"):
        executor.submit(_job(1, lambda: "never"))
    assert len(executor._jobs) == 0


def test_a_queued_job_cancelled_before_it_started_never_runs() -> None:
    """A job whose deadline passed while it waited in the queue is dropped, not run later."""
    executor, outcomes = _started(1)
    gate = threading.Event()
    ran: list[str] = []
    executor.submit(_job(1, lambda: gate.wait(WAIT) and "busy"))
    executor.submit(_job(2, lambda: ran.append("dropped")))
    executor.cancel(2)
    executor.submit(_job(3, lambda: "next"))
    gate.set()
    keys = [outcomes.get(timeout=WAIT).key for _ in range(2)]
    executor.shutdown()
    assert keys == [1, 3]
    assert ran == []


def test_shutdown_with_cancel_drops_the_queued_jobs() -> None:
    """An interrupted run's jobs still waiting in the queue are not run afterwards."""
    executor, outcomes = _started(1)
    busy = _Blocker("busy")
    ran: list[str] = []
    executor.submit(_job(1, busy))
    assert busy.started.wait(WAIT)
    executor.submit(_job(2, lambda: ran.append("queued")))
    executor.shutdown(cancel=True)
    busy.gate.set()
    assert outcomes.get(timeout=WAIT).key == 1
    time.sleep(0.02)  # room for a wrongly kept job to run
    assert outcomes.empty()
    assert ran == []
