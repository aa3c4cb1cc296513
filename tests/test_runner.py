"""The run loop: dependency order, failure propagation, retries on an injected clock, interrupts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import pipekit
from pipekit import State, dag, task
from pipekit.stores import MemoryStore
from pipekit.testing import FakeClock
from tests.dags import diamond as diamond_mod
from tests.dags.etl import etl


@pytest.fixture
def diamond() -> Iterator[Any]:
    """The diamond fixture DAG with its failure set and call log reset."""
    diamond_mod.FAIL.clear()
    diamond_mod.CALLS.clear()
    yield diamond_mod
    diamond_mod.FAIL.clear()
    diamond_mod.CALLS.clear()


def test_issue_example_runs_and_returns_a_complete_run(memory_store: MemoryStore) -> None:
    """etl.run(ds=...) succeeds with every field of Run and TaskRun filled in."""
    run = etl.run(ds="2024-01-05", store=memory_store)
    assert run.state == State.SUCCESS == "success"
    assert str(run.state) == "success"
    assert run.dag == "etl"
    assert run.params["region"] == "eu"
    assert run.started_at <= run.ended_at  # type: ignore[operator]
    assert list(run.tasks) == ["extract", "transform", "load"]
    load = run.tasks["load"]
    assert (load.state, load.attempts, load.result, load.error) == ("success", 1, 3, None)
    assert load.started_at is not None and load.ended_at is not None
    stored = memory_store.get_run(run.id)
    assert stored.state == "success" and stored.params == {"ds": "2024-01-05", "region": "eu"}
    assert stored.module == "tests.dags.etl"


@pytest.mark.parametrize("executor", ["sequential", "threads"])
def test_failure_marks_descendants_and_spares_independent_branches(
    diamond: Any, memory_store: MemoryStore, executor: str
) -> None:
    """When b fails, d is upstream_failed and never runs; c and the x -> y branch succeed."""
    diamond.FAIL.add("b")
    with pytest.raises(pipekit.RunFailed) as info:
        diamond.diamond.run(store=memory_store, executor=executor)
    run = info.value.run
    states = {t: r.state for t, r in run.tasks.items()}
    assert states == {
        "a": "success",
        "b": "failed",
        "c": "success",
        "d": "upstream_failed",
        "x": "success",
        "y": "success",
    }
    assert "d" not in diamond.CALLS
    assert run.state == "failed"
    assert run.failed_tasks == ["b"]
    assert run.tasks["b"].error is not None and run.tasks["b"].error.startswith(
        "ValueError: b broke"
    )
    assert "Traceback" in run.tasks["b"].error
    assert run.tasks["d"].attempts == 0
    assert "b" in str(info.value) and run.id in str(info.value)
    assert memory_store.get_run(run.id).tasks["d"].state == "upstream_failed"


def test_failure_at_the_root_fails_the_whole_diamond(
    diamond: Any, memory_store: MemoryStore
) -> None:
    """A failing source makes every descendant upstream_failed exactly once."""
    diamond.FAIL.add("a")
    run = diamond.diamond.run(store=memory_store, raise_on_failure=False, executor="sequential")
    assert [t for t, r in run.tasks.items() if r.state == "upstream_failed"] == ["b", "c", "d"]
    assert sorted(diamond.CALLS) == ["a", "x", "y"]


def test_raise_on_failure_false_returns_the_failed_run(
    diamond: Any, memory_store: MemoryStore
) -> None:
    """raise_on_failure=False returns the Run instead of raising."""
    diamond.FAIL.add("y")
    run = diamond.diamond.run(store=memory_store, raise_on_failure=False)
    assert run.state == "failed" and run.tasks["y"].state == "failed"


def test_retries_wait_on_the_injected_clock(memory_store: MemoryStore) -> None:
    """Two failures then success: three attempts, delays 0.5 and 1.0 slept on the fake clock."""
    calls: list[int] = []

    @task(retries=2, retry_delay=0.5, retry_backoff=2)
    def flaky() -> str:
        calls.append(pipekit.context().attempt)
        if len(calls) < 3:
            raise ConnectionError("warehouse down")
        return "ok"

    @dag
    def g() -> None:
        flaky()

    clock = FakeClock()
    run = g.run(store=memory_store, clock=clock, executor="sequential")
    assert run.tasks["flaky"].state == "success"
    assert run.tasks["flaky"].attempts == 3
    assert calls == [1, 2, 3]
    assert clock.sleeps == [0.5, 1.0]
    history = memory_store.attempts(run.id, "flaky")
    assert [(a.number, a.state) for a in history] == [(1, "failed"), (2, "failed"), (3, "success")]
    assert history[0].error is not None and "warehouse down" in history[0].error
    assert memory_store.get_run(run.id).tasks["flaky"].error is None


def test_retries_exhausted_fail_with_the_last_error(memory_store: MemoryStore) -> None:
    """After retries+1 attempts the task fails and keeps its last error."""
    attempts: list[int] = []

    @task(retries=1, retry_delay=3)
    def broken() -> None:
        attempts.append(pipekit.context().attempt)
        raise RuntimeError(f"attempt {attempts[-1]}")

    @dag
    def g() -> None:
        broken()

    clock = FakeClock()
    run = g.run(store=memory_store, clock=clock, raise_on_failure=False)
    assert attempts == [1, 2]
    assert run.tasks["broken"].attempts == 2
    assert run.tasks["broken"].error is not None and "attempt 2" in run.tasks["broken"].error
    assert clock.sleeps == [3]


def test_retry_on_limits_what_is_retried(memory_store: MemoryStore) -> None:
    """An error not listed in retry_on fails the task on its first attempt."""

    @task(retries=5, retry_on=(ConnectionError,))
    def auth() -> None:
        raise PermissionError("bad password")

    @dag
    def g() -> None:
        auth()

    clock = FakeClock()
    run = g.run(store=memory_store, clock=clock, raise_on_failure=False)
    assert run.tasks["auth"].attempts == 1
    assert clock.sleeps == []


def test_a_retrying_task_does_not_hold_up_other_branches(memory_store: MemoryStore) -> None:
    """While one task waits for its retry, independent tasks run and finish."""
    order: list[str] = []

    @task(retries=1, retry_delay=10)
    def slow_retry() -> None:
        order.append(f"retry{pipekit.context().attempt}")
        if pipekit.context().attempt == 1:
            raise OSError("transient")

    @task
    def other() -> None:
        order.append("other")

    @dag
    def g() -> None:
        slow_retry()
        other()

    run = g.run(store=memory_store, clock=FakeClock(), executor="sequential")
    assert run.state == "success"
    assert order == ["retry1", "other", "retry2"]


def test_skip_marks_the_task_and_its_descendants_skipped(memory_store: MemoryStore) -> None:
    """raise pipekit.Skip skips downstream tasks and the run still succeeds."""

    @task
    def maybe() -> None:
        raise pipekit.Skip("holiday")

    @task
    def after(x: None) -> None:
        raise AssertionError("must not run")

    @dag
    def g() -> None:
        after(maybe())

    run = g.run(store=memory_store)
    assert run.state == "success"
    assert {t: r.state for t, r in run.tasks.items()} == {"maybe": "skipped", "after": "skipped"}


def test_context_outside_a_task_raises() -> None:
    """pipekit.context() in plain code raises ContextError, a PipekitError."""
    with pytest.raises(pipekit.ContextError, match="outside a running task"):
        pipekit.context()


def test_context_inside_a_task_knows_the_run(memory_store: MemoryStore) -> None:
    """The context carries run id, dag, task id, attempt and params."""
    seen: list[pipekit.TaskContext] = []

    @task
    def look() -> None:
        seen.append(pipekit.context())

    @dag
    def ctxdag(ds: str, n: int = 2) -> None:
        look()

    run = ctxdag.run(ds="x", store=memory_store)
    (ctx,) = seen
    assert (ctx.run_id, ctx.dag, ctx.task, ctx.attempt) == (run.id, "ctxdag", "look", 1)
    assert dict(ctx.params) == {"ds": "x", "n": 2}


def test_keyboard_interrupt_records_states_and_reraises(memory_store: MemoryStore) -> None:
    """Ctrl-C inside a task stops launching, records the run as failed, and re-raises."""
    ran: list[str] = []

    @task
    def first() -> None:
        ran.append("first")

    @task
    def interrupted(x: None) -> None:
        raise KeyboardInterrupt

    @task
    def never(x: None) -> None:
        ran.append("never")

    @dag
    def g() -> None:
        never(interrupted(first()))

    with pytest.raises(KeyboardInterrupt):
        g.run(store=memory_store, executor="sequential")
    (run,) = memory_store.list_runs(dag="g")
    assert run.state == "failed"
    assert run.error is not None and "KeyboardInterrupt" in run.error
    assert run.ended_at is not None
    assert {t: r.state for t, r in run.tasks.items()} == {
        "first": "success",
        "interrupted": "failed",
        "never": "queued",
    }
    assert ran == ["first"]


class Shutdown(BaseException):
    """What a signal handler or a framework (pytest-timeout, gevent) raises to interrupt."""


def test_an_interrupting_base_exception_in_the_loop_thread_stops_the_run(
    memory_store: MemoryStore,
) -> None:
    """Not a task failure: like Ctrl-C, it propagates and the run is recorded interrupted."""

    @task
    def stopped() -> None:
        raise Shutdown("time is up")

    @dag
    def halted() -> None:
        stopped()

    with pytest.raises(Shutdown, match="time is up"):
        halted.run(store=memory_store, executor="sequential")
    (run,) = memory_store.list_runs(dag="halted")
    assert (run.state, run.error) == ("failed", "run interrupted by Shutdown")
    assert run.tasks["stopped"].error == "run interrupted by Shutdown"


def test_default_store_is_sqlite_under_pipekit_home(pipekit_home: Any) -> None:
    """Without store=, history goes to $PIPEKIT_HOME/history.db."""
    run = etl.run(ds="2024-01-05")
    from pipekit.stores import SQLiteStore

    reopened = SQLiteStore(pipekit_home / "history.db")
    try:
        assert reopened.get_run(run.id).state == "success"
    finally:
        reopened.close()


def test_configure_sets_the_process_wide_store() -> None:
    """pipekit.configure(store=...) is used when a run names no store."""
    store = MemoryStore()
    pipekit.configure(store=store)
    run = etl.run(ds="2024-01-05")
    assert [r.id for r in store.list_runs()] == [run.id]
    with pytest.raises(pipekit.PipekitError, match="does not implement"):
        pipekit.configure(store="nope")  # type: ignore[arg-type]


def test_unknown_executor_fails_before_anything_is_recorded(memory_store: MemoryStore) -> None:
    """A misspelt executor name is a PipekitError naming it; no run is recorded."""
    with pytest.raises(pipekit.PipekitError, match="'thread'"):
        etl.run(ds="2024-01-05", store=memory_store, executor="thread")
    assert memory_store.list_runs() == []


def test_run_ids_are_unique_and_time_ordered(memory_store: MemoryStore) -> None:
    """Each run gets a new id; list_runs returns newest first."""
    ids = [etl.run(ds="2024-01-05", store=memory_store).id for _ in range(3)]
    assert len(set(ids)) == 3
    assert [r.id for r in memory_store.list_runs(dag="etl")] == ids[::-1]


def test_a_run_id_is_its_start_second_then_48_random_bits() -> None:
    """``YYYYmmddTHHMMSS-`` from the start time (zero-padded), then 12 hex digits."""
    from datetime import UTC, datetime

    from pipekit.runner import new_run_id

    ids = {new_run_id(datetime(987, 1, 5, 3, 4, 5, 999_999, tzinfo=UTC)) for _ in range(100)}

    assert all(i.startswith("09870105T030405-") and len(i) == 28 for i in ids)
    assert all(int(i[16:], 16) < 2**48 for i in ids)
    assert len(ids) == 100


def test_ctrl_c_while_threads_run_stops_launching_and_records(memory_store: MemoryStore) -> None:
    """SIGINT delivered to the loop thread while a worker thread runs is recorded and re-raised."""
    import os
    import signal
    import threading

    release = threading.Event()
    ran: list[str] = []

    @task
    def interrupter() -> None:
        os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does; Python raises it in the main thread
        release.wait(2)

    @task
    def later(x: None) -> None:
        ran.append("later")

    @dag
    def g() -> None:
        later(interrupter())

    try:
        with pytest.raises(KeyboardInterrupt):
            g.run(store=memory_store, executor="threads")
    finally:
        release.set()
    (run,) = memory_store.list_runs(dag="g")
    assert run.state == "failed" and run.ended_at is not None
    assert run.tasks["interrupter"].state == "failed"
    assert run.tasks["interrupter"].error == "run interrupted by KeyboardInterrupt"
    assert run.tasks["later"].state == "queued"
    assert ran == []
