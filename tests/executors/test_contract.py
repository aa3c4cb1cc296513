"""The executor contract: every executor, driven by ``DAG.run``, must pass these tests.

Retries, timeouts and upstream failures live in the run loop, so what is pinned here
is that each executor carries them out the same way: one attempt per job, outcomes
reported (errors with their traceback text), timed-out attempts given up on, and no
more than ``max_workers`` attempts at once.
"""

from __future__ import annotations

import time

import pytest

import pipekit
from pipekit.stores.memory import MemoryStore

from .pipelines import (
    calls,
    cancelling,
    chain,
    crowded,
    diamond,
    failing,
    gives_up,
    halting,
    introspect,
    recovers,
    stuck,
    unpicklable_error,
    unprintable,
)

EXECUTORS = ["sequential", "threads", "processes", "dask"]

every_executor = pytest.mark.parametrize("executor", EXECUTORS, indirect=True)

WALL_LIMIT = 1.5
"""Seconds a run with a timed-out task may take; the blocked task would hold it for 30 s."""


@every_executor
def test_chain_passes_each_result_to_the_next_task(
    executor: str, store: MemoryStore, workdir: str
) -> None:
    """A linear chain succeeds and each task receives its upstream's result."""
    run = chain.run(executor=executor, store=store, workdir=workdir)
    assert run.state == "success"
    assert {t: r.result for t, r in run.tasks.items()} == {
        "source": 5,
        "double": 10,
        "double__1": 20,
    }
    assert calls(workdir) == ["source", "double", "double"]


@every_executor
def test_diamond_joins_both_branches(executor: str, store: MemoryStore, workdir: str) -> None:
    """A diamond's join task runs once, after both branches, with both of their results."""
    run = diamond.run(executor=executor, store=store, workdir=workdir)
    assert run.state == "success"
    assert {t: r.result for t, r in run.tasks.items()} == {
        "source": 3,
        "double": 6,
        "square": 9,
        "add": 15,
    }
    assert sorted(calls(workdir)) == ["add", "double", "source", "square"]
    assert calls(workdir)[-1] == "add"


@every_executor
def test_failure_records_error_and_stops_descendants(
    executor: str, store: MemoryStore, workdir: str
) -> None:
    """A failed task keeps its error and traceback; descendants never run; other branches do."""
    run = failing.run(executor=executor, store=store, workdir=workdir, raise_on_failure=False)
    assert run.state == "failed"
    bad = run.tasks["broken"]
    assert bad.state == "failed"
    assert bad.attempts == 1
    assert bad.error is not None
    assert bad.error.startswith("ValueError: broken on purpose")
    assert "Traceback (most recent call last)" in bad.error
    assert "in broken" in bad.error  # the frame of the task function itself
    for tid in ("double", "double__1"):
        assert run.tasks[tid].state == "upstream_failed"
        assert run.tasks[tid].attempts == 0
    assert run.tasks["source"].state == "success"
    assert run.tasks["source"].result == 7
    assert sorted(calls(workdir)) == ["broken", "source"]
    assert run.failed_tasks == ["broken"]


@every_executor
def test_failure_raises_run_failed_carrying_the_run(
    executor: str, store: MemoryStore, workdir: str
) -> None:
    """By default a failed run raises RunFailed, whose ``.run`` is the finished run."""
    with pytest.raises(pipekit.RunFailed, match="broken") as info:
        failing.run(executor=executor, store=store, workdir=workdir)
    run = info.value.run
    assert run.state == "failed"
    assert run.tasks["broken"].state == "failed"
    assert run.tasks["source"].state == "success"
    assert store.get_run(run.id).state == "failed"


@every_executor
def test_an_error_that_cannot_be_pickled_keeps_its_text(
    executor: str, store: MemoryStore, workdir: str
) -> None:
    """An exception that cannot be pickled still fails the task with its own text."""
    run = unpicklable_error.run(executor=executor, store=store, raise_on_failure=False)
    failed = run.tasks["raise_locked"]
    assert failed.state == "failed"
    assert failed.error is not None
    assert failed.error.startswith("LockedError: the original message")
    assert "Traceback (most recent call last)" in failed.error


@every_executor
def test_an_error_whose_str_raises_fails_only_its_task(
    executor: str, store: MemoryStore, workdir: str
) -> None:
    """An exception whose str() raises fails its task (text as traceback words it); no more."""
    run = unprintable.run(executor=executor, store=store, workdir=workdir, raise_on_failure=False)
    failed = run.tasks["raise_unprintable"]
    assert failed.state == "failed"
    assert failed.attempts == 1
    assert failed.error is not None
    assert failed.error.startswith("Unprintable: <exception str() failed>")
    assert "in raise_unprintable" in failed.error
    assert run.tasks["source"].result == 4
    assert run.state == "failed"


@every_executor
def test_a_base_exception_other_than_ctrl_c_fails_only_its_task(
    executor: str, store: MemoryStore, workdir: str
) -> None:
    """CancelledError (a BaseException) fails its task like any error; the run goes on."""
    run = cancelling.run(executor=executor, store=store, workdir=workdir, raise_on_failure=False)
    failed = run.tasks["cancelled"]
    assert failed.state == "failed"
    assert failed.error is not None
    assert failed.error.startswith("CancelledError: cancelled on purpose")
    assert run.tasks["double"].state == "upstream_failed"
    assert run.tasks["source"].state == "success"
    assert run.state == "failed"  # and run() returned: the run was not interrupted


@every_executor
def test_a_base_exception_raised_in_a_timed_attempt_is_its_error_not_a_timeout(
    executor: str, store: MemoryStore, workdir: str
) -> None:
    """A task with a timeout runs off the loop's thread: whatever it raises is its error."""
    started = time.monotonic()
    run = halting.run(executor=executor, store=store, workdir=workdir, raise_on_failure=False)
    assert time.monotonic() - started < WALL_LIMIT  # well before the 5 s timeout
    failed = run.tasks["halt"]
    assert failed.state == "failed"
    assert failed.attempts == 1
    assert failed.error is not None
    assert failed.error.startswith("Halt: halted on purpose")
    assert run.tasks["source"].result == 6


@every_executor
def test_retries_until_success(executor: str, store: MemoryStore, workdir: str) -> None:
    """A task failing twice with retries=2 succeeds on its third attempt."""
    run = recovers.run(executor=executor, store=store, workdir=workdir)
    flaky = run.tasks["flaky"]
    assert flaky.state == "success"
    assert flaky.attempts == 3
    assert flaky.result == 3
    assert flaky.error is None
    assert calls(workdir) == ["flaky"] * 3


@every_executor
def test_error_outside_retry_on_fails_at_once(
    executor: str, store: MemoryStore, workdir: str
) -> None:
    """An exception not listed in retry_on fails the task after one attempt despite retries."""
    run = gives_up.run(executor=executor, store=store, workdir=workdir, raise_on_failure=False)
    picky = run.tasks["picky"]
    assert picky.state == "failed"
    assert picky.attempts == 1
    assert picky.error is not None
    assert picky.error.startswith("ValueError: retrying will not help")
    assert calls(workdir) == ["picky"]


@every_executor
def test_timeout_gives_up_on_a_blocked_task(
    executor: str, store: MemoryStore, workdir: str
) -> None:
    """A task blocked past its timeout fails with TaskTimeout and the run moves on at once."""
    started = time.monotonic()
    run = stuck.run(
        executor=executor, store=store, workdir=workdir, max_workers=1, raise_on_failure=False
    )
    elapsed = time.monotonic() - started
    hang = run.tasks["hang"]
    assert hang.state == "failed"
    assert hang.attempts == 1
    assert hang.error is not None
    assert hang.error.startswith("TaskTimeout: task 'hang' timed out after 0.2s")
    # With one worker, source can only run once the blocked attempt is given up on.
    assert run.tasks["source"].state == "success"
    assert run.tasks["source"].result == 1
    assert elapsed < WALL_LIMIT
    assert "hang-ended" not in calls(workdir)


@every_executor
def test_context_describes_the_running_attempt(
    executor: str, store: MemoryStore, workdir: str
) -> None:
    """pipekit.context() in a task gives the run id, DAG name, task id, attempt and params."""
    run = introspect.run(executor=executor, store=store, workdir=workdir, region="us", limit="5")
    params = {"workdir": workdir, "region": "us", "limit": 5}
    for tid in ("whoami", "whoami__1"):
        assert run.tasks[tid].result == {
            "run_id": run.id,
            "dag": "introspect",
            "task": tid,
            "attempt": 2,
            "params": params,
        }


@every_executor
def test_max_workers_bounds_concurrency(executor: str, store: MemoryStore, workdir: str) -> None:
    """With max_workers=2, no more than two tasks are ever running at once."""
    run = crowded.run(executor=executor, store=store, workdir=workdir, max_workers=2)
    seen = [r.result for r in run.tasks.values()]
    assert len(seen) == 4
    assert 1 <= max(seen) <= 2


@pytest.mark.parametrize(
    "executor",
    EXECUTORS,
    indirect=True,
)
def test_invalid_max_workers_is_refused_before_anything_runs(
    executor: str, store: MemoryStore, workdir: str
) -> None:
    """max_workers=0 raises PipekitError naming the value, before a run is recorded."""
    with pytest.raises(pipekit.PipekitError, match="max_workers=0"):
        chain.run(executor=executor, store=store, workdir=workdir, max_workers=0)
    assert store.list_runs() == []
    assert calls(workdir) == []


def test_unknown_executor_name_is_refused_before_anything_runs(
    store: MemoryStore, workdir: str
) -> None:
    """An unknown executor name raises PipekitError naming it, before a run is recorded."""
    with pytest.raises(pipekit.PipekitError, match="'fibers'"):
        chain.run(executor="fibers", store=store, workdir=workdir)
    assert store.list_runs() == []
    assert calls(workdir) == []
