"""The threads executor's quick tasks: run in the loop's thread instead of a hand-off.

Where the run loop would wait for outcomes, and no attempt has a deadline, it asks the
executor for a queued job of a *quick* task (its last attempt in this executor took
under ``quick`` seconds) and runs it itself. These tests pin which jobs qualify (timed
with an injected timer, and with worker threads that start only when the test says,
so nothing depends on the machine's speed), that nothing is taken while a worker runs
a job, that such a job runs once and is returned instead of reported, that only an
interruption (Ctrl-C) escapes it, that a job waiting for another queued job still meets it, that
tasks with a timeout keep going to workers, and that a Ctrl-C inside such a job in a
run still leaves an accurate history.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import types
from collections.abc import Callable, Iterator
from datetime import date
from typing import ClassVar

import pytest

import pipekit
from pipekit import dag, task
from pipekit.context import TaskContext
from pipekit.executors import Job, Outcome, ThreadsExecutor
from pipekit.run import Run
from pipekit.state import State
from pipekit.stores.memory import MemoryStore

WAIT = 2.0
"""Upper bound, in seconds, on waiting for a worker thread; passing tests never wait this long."""


class _Timer:
    """A stand-in for ``time.perf_counter``: each reading is ``step`` seconds after the last."""

    def __init__(self, step: float) -> None:
        self.step = step
        self.now = 0.0

    def __call__(self) -> float:
        self.now += self.step
        return self.now


class _ThreadTimer(threading.local, _Timer):
    """A :class:`_Timer` per thread: an attempt seems to take ``step`` seconds, however
    the threads of a run interleave their readings (a shared one can add them up)."""


def _executor(step: float, max_workers: int = 2, quick: float = 0.001) -> ThreadsExecutor:
    """A threads executor whose attempts all seem to take ``step`` seconds."""
    executor = ThreadsExecutor(max_workers, quick=quick)
    executor._timer = _Timer(step)
    return executor


def _job(key: int, task_id: str, fn: Callable[[], object]) -> Job:
    return Job(key, fn, (), {}, TaskContext("run", "dag", task_id, 1, {}))


def _thread_name() -> str:
    return threading.current_thread().name


class _Deferred(threading.Thread):
    """A worker thread that starts only when the test calls :meth:`go`.

    So a submitted job deterministically waits in the queue, its worker not yet there.
    """

    waiting: ClassVar[list[_Deferred]] = []

    def start(self) -> None:
        type(self).waiting.append(self)

    @classmethod
    def go(cls) -> None:
        while cls.waiting:
            threading.Thread.start(cls.waiting.pop())


@pytest.fixture
def deferred(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_Deferred]]:
    """The threads executor's worker threads start only on ``deferred.go()``."""
    import pipekit.executors.threads as threads_module

    _Deferred.waiting = []
    shim = types.SimpleNamespace(Thread=_Deferred, Lock=threading.Lock)
    monkeypatch.setattr(threads_module, "threading", shim)
    yield _Deferred
    _Deferred.go()  # no thread is left unstarted, holding a count in the pool


def _knows_t(
    deferred: type[_Deferred], step: float = 0.0001, quick: float = 0.001
) -> tuple[ThreadsExecutor, queue.SimpleQueue[Outcome]]:
    """A started executor that ran task ``t`` once on a worker and then ended its workers.

    Its attempts all seem to take ``step`` seconds; the next job stays queued until
    ``deferred.go()`` starts a worker for it. Returns the executor and its outcomes.
    """
    executor = _executor(step, quick=quick)
    outcomes: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
    executor.start(outcomes.put)
    executor.submit(_job(0, "t", _thread_name))
    deferred.go()
    assert outcomes.get(timeout=WAIT).value == "pipekit-worker"
    executor.shutdown()
    return executor, outcomes


def test_a_queued_job_of_a_quick_task_runs_in_the_calling_thread_once(
    deferred: type[_Deferred],
) -> None:
    executor, outcomes = _knows_t(deferred)
    executor.submit(_job(1, "t", _thread_name))  # queued: its worker is not there yet

    done = executor.run_quick()

    assert done is not None and done.key == 1
    assert done.value == threading.current_thread().name
    assert executor.run_quick() is None  # taken off the queue: it runs once
    deferred.go()
    executor.shutdown()
    assert outcomes.empty()  # returned, never reported as well


@pytest.mark.parametrize(
    ("step", "quick", "task_id"),
    [
        (0.0001, 0.001, "other"),  # never ran in this executor: not known to be quick
        (0.002, 0.001, "t"),  # its last attempt took 2 ms
        (0.0, 0.0, "t"),  # quick=0 turns it off
    ],
)
def test_jobs_not_known_to_be_quick_stay_with_the_workers(
    deferred: type[_Deferred], step: float, quick: float, task_id: str
) -> None:
    executor, outcomes = _knows_t(deferred, step, quick)
    executor.submit(_job(1, task_id, _thread_name))

    assert executor.run_quick() is None

    deferred.go()
    done = outcomes.get(timeout=WAIT)
    executor.shutdown()
    assert (done.key, done.value) == (1, "pipekit-worker")


def test_nothing_is_taken_while_a_worker_runs_a_job(deferred: type[_Deferred]) -> None:
    """A worker's outcome must never wait behind a job the loop runs itself."""
    executor, outcomes = _knows_t(deferred)
    gate = threading.Event()
    started = threading.Event()

    def blocker() -> str:
        started.set()
        gate.wait(WAIT)
        return "gated"

    executor.submit(_job(1, "slow", blocker))
    deferred.go()
    assert started.wait(WAIT)
    executor.submit(_job(2, "t", _thread_name))  # a second worker is on its way

    assert executor.run_quick() is None

    gate.set()
    keys = sorted(outcomes.get(timeout=WAIT).key for _ in range(2))
    executor.shutdown()
    assert keys == [1, 2]


def test_an_empty_queue_gives_nothing_to_run() -> None:
    assert _executor(step=0.0).run_quick() is None


def test_a_quick_task_that_ran_slowly_in_the_calling_thread_is_no_longer_quick(
    deferred: type[_Deferred],
) -> None:
    executor, outcomes = _knows_t(deferred)
    executor.submit(_job(1, "t", _thread_name))
    executor._timer.step = 0.01  # type: ignore[attr-defined]  # this attempt takes 10 ms
    assert executor.run_quick() is not None
    executor.submit(_job(2, "t", _thread_name))

    assert executor.run_quick() is None

    deferred.go()
    assert outcomes.get(timeout=WAIT).key == 2
    executor.shutdown()


class _Shutdown(BaseException):
    """What a signal handler or a framework raises to interrupt the program."""


@pytest.mark.parametrize(
    ("raised", "escapes"),
    [(KeyboardInterrupt, True), (_Shutdown, True), (asyncio.CancelledError, False)],
)
def test_only_an_interruption_escapes_a_job_run_here(
    deferred: type[_Deferred], raised: type[BaseException], escapes: bool
) -> None:
    """Ctrl-C (or a signal handler's exception) stops the run; a task's error fails it."""
    executor, outcomes = _knows_t(deferred)

    def fails() -> None:
        raise raised

    executor.submit(_job(1, "t", fails))
    if escapes:
        with pytest.raises(raised):
            executor.run_quick()
    else:
        done = executor.run_quick()
        assert done is not None and not done.ok
        assert isinstance(done.error, raised)
    deferred.go()
    executor.shutdown()
    assert outcomes.empty()


@pytest.mark.parametrize("quick", [-0.5, float("nan"), "1ms", True])
def test_a_bad_quick_is_refused_with_the_fix(quick: object) -> None:
    with pytest.raises(pipekit.PipekitError, match=r"quick=.* is not a number of seconds"):
        ThreadsExecutor(quick=quick)  # type: ignore[arg-type]


# -- in runs ------------------------------------------------------------------------------

WHERE: list[tuple[str, str]] = []  # (task, thread name)


@task
def start(ds: date) -> int:
    return ds.day


@task
def branch(n: int) -> int:
    WHERE.append((pipekit.context().task, _thread_name()))
    return n + 1


@task
def total(values: list[int]) -> int:
    return sum(values)


@dag
def fan(ds: date) -> None:
    first = start(ds)
    total([branch(first) for _ in range(4)])


def _backfill(d: pipekit.DAG, end: str, max_workers: int) -> list[Run]:
    """Each date's run of a backfill of ``d`` from 2026-01-01 on a quick-timed executor."""
    report = pipekit.backfill(
        d,
        "2026-01-01",
        end,
        store=MemoryStore(),
        executor=_executor(0.0001, max_workers),
        progress=False,
    )
    runs = [o.run for o in report.dates.values()]
    assert all(r is not None for r in runs)
    return [r for r in runs if r is not None]


def test_a_backfill_runs_quick_branches_in_the_loop_thread_after_the_first_date(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Once an executor has seen the branches take under ``quick``, a backfill's later
    dates run them in the loop's thread: here no worker thread can start after the
    first date, so every later branch must have run there (else the backfill hangs)."""
    import pipekit.executors.threads as threads_module

    WHERE.clear()
    executor = _executor(0.0001, 4)
    executor._timer = _ThreadTimer(0.0001)  # every branch is quick, whatever the timing
    # On this first date every branch goes through the executor, which learns them all
    # (else the last one may run inline, when the others have already ended).
    executor.inline_alone = False
    first = fan.run(ds="2026-01-01", executor=executor, store=MemoryStore())
    del executor.inline_alone  # the class's again, for the backfill
    assert {t for _, t in executor._quick} >= {"branch", "branch__1", "branch__2", "branch__3"}
    assert first.tasks["total"].result == 8
    me = _thread_name()
    # Not known yet: the first attempt runs on a worker. (Once it has ended, a branch
    # still queued on the first date may already run here, if no worker is busy then.)
    assert len(WHERE) == 4 and WHERE[0][1] != me

    _Deferred.waiting = []  # from here on, worker threads wait for a go() that never comes
    shim = types.SimpleNamespace(Thread=_Deferred, Lock=threading.Lock)
    monkeypatch.setattr(threads_module, "threading", shim)
    WHERE.clear()
    try:
        report = pipekit.backfill(
            fan, "2026-01-02", "2026-01-06", store=MemoryStore(), executor=executor, progress=False
        )
    finally:
        _Deferred.go()  # let any thread made meanwhile start and end
    runs = [o.run for o in report.dates.values()]
    assert [r.tasks["total"].result if r else None for r in runs] == [
        4 * (day + 1) for day in range(2, 7)
    ]
    assert all(r is not None and r.state is State.SUCCESS for r in runs)
    assert [name for _, name in WHERE] == [me] * 20  # each branch once per date, all here
    attempts = [t.attempts for r in runs if r for t in r.tasks.values()]
    assert set(attempts) == {1}


BARRIER = threading.Barrier(2, timeout=WAIT)


@task
def meet(side: str) -> str:
    BARRIER.wait()
    return side


@dag
def rendezvous(ds: date) -> None:
    meet("left")
    meet("right")


def test_a_job_run_in_the_loop_thread_never_holds_up_one_it_waits_for() -> None:
    """Two tasks that wait for each other: the one left queued still gets a worker."""
    BARRIER.reset()
    runs = _backfill(rendezvous, "2026-01-04", 2)
    assert len(runs) == 4
    assert all(r.state is State.SUCCESS for r in runs)


@task(timeout=10)
def timed_branch(n: int) -> int:
    WHERE.append((pipekit.context().task, _thread_name()))
    return n


@dag
def timed_fan(ds: date) -> None:
    first = start(ds)
    total([timed_branch(first) for _ in range(3)])


def test_tasks_with_a_timeout_always_run_on_workers() -> None:
    """A deadline must be watched while it runs: the loop never takes such a job itself."""
    WHERE.clear()
    runs = _backfill(timed_fan, "2026-01-04", 3)
    assert len(runs) == 4
    assert all(r.state is State.SUCCESS for r in runs)
    assert len(WHERE) == 12
    assert _thread_name() not in {name for _, name in WHERE}


@task
def stop_here() -> str:
    if threading.current_thread() is threading.main_thread():
        raise KeyboardInterrupt
    return "on a worker"


@task
def other() -> str:
    return "other"


@dag
def pair() -> None:
    other()
    stop_here()


def test_ctrl_c_in_a_task_run_in_the_loop_thread_leaves_an_accurate_history() -> None:
    store = MemoryStore()
    executor = _executor(0.0001, 2)
    assert pair.run(store=store, executor=executor).state is State.SUCCESS  # now known
    interrupted = None
    for _ in range(10):  # a worker may take the job first; then the run just succeeds
        try:
            pair.run(store=store, executor=executor)
        except KeyboardInterrupt:
            interrupted = store.list_runs(dag="pair", limit=1)[0]
            break
    assert interrupted is not None, "stop_here never ran in the loop's thread"
    assert interrupted.state is State.FAILED
    assert interrupted.error == "run interrupted by KeyboardInterrupt"
    stopped = interrupted.tasks["stop_here"]
    assert (stopped.state, stopped.error) == (State.FAILED, "run interrupted by KeyboardInterrupt")
