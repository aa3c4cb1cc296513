"""Executor factories: ``executor=`` given a class or a zero-argument callable.

Each run (or each backfill thread) makes its own executor with the factory, and pipekit
shuts down and closes what it made; an object the caller passes stays the caller's.
"""

from __future__ import annotations

import datetime as dt
import functools
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from pipekit import PipekitError, backfill, dag, serve, task
from pipekit.executors import (
    SequentialExecutor,
    ThreadsExecutor,
    check_executor,
    is_factory,
    make_executor,
)
from pipekit.stores import MemoryStore
from pipekit.testing import FakeClock
from tests.dags import backfillable as dags
from tests.dags.backfillable import backfillable
from tests.serve_dags import daily
from tests.serve_dags.daily import nightly


class Tracked(ThreadsExecutor):
    """A threads executor that records how it was made and let go of."""

    made: ClassVar[list[Tracked]] = []
    lock = threading.Lock()

    def __init__(self, max_workers: int | None = None, **options: Any) -> None:
        super().__init__(max_workers, **options)
        self.starts = 0
        self.shutdowns: list[bool] = []
        self.closes = 0
        with Tracked.lock:
            Tracked.made.append(self)

    def start(self, report: Any) -> None:
        self.starts += 1
        super().start(report)

    def shutdown(self, *, cancel: bool = False) -> None:
        self.shutdowns.append(cancel)
        super().shutdown(cancel=cancel)

    def close(self) -> None:
        self.closes += 1


@pytest.fixture(autouse=True)
def clean() -> Iterator[None]:
    Tracked.made = []
    dags.reset()
    daily.reset()
    yield
    dags.reset()
    daily.reset()


@task
def one() -> int:
    return 1


@task
def plus(x: int) -> int:
    return x + 1


@dag
def pair() -> None:
    plus(one())


def test_a_class_and_callables_are_factories_and_names_and_objects_are_not() -> None:
    """A class, a lambda and a partial are factories; a name or an executor object is not."""
    assert is_factory(ThreadsExecutor)
    assert is_factory(lambda: ThreadsExecutor(quick=0))
    assert is_factory(functools.partial(ThreadsExecutor, 2))
    assert not is_factory("threads")
    assert not is_factory(ThreadsExecutor())
    assert not is_factory(SequentialExecutor())


def test_each_run_makes_its_own_executor_and_closes_it(memory_store: MemoryStore) -> None:
    """Two runs with one factory make two executors; each is shut down and closed once."""
    first = pair.run(executor=lambda: Tracked(quick=0), store=memory_store)
    second = pair.run(executor=Tracked, store=memory_store)
    assert first.tasks["plus"].result == 2
    assert second.tasks["plus"].result == 2
    assert len(Tracked.made) == 2
    assert Tracked.made[0] is not Tracked.made[1]
    assert Tracked.made[0].quick == 0
    assert [(e.starts, e.shutdowns, e.closes) for e in Tracked.made] == [(1, [False], 1)] * 2


def test_an_executor_object_is_shut_down_but_left_open_for_its_owner(
    memory_store: MemoryStore,
) -> None:
    """The caller's object is shut down after the run (reusable) but never closed."""
    mine = Tracked()
    pair.run(executor=mine, store=memory_store)
    pair.run(executor=mine, store=memory_store)
    assert (mine.starts, mine.shutdowns, mine.closes) == (2, [False, False], 0)


def test_a_run_interrupted_by_ctrl_c_cancels_and_closes_what_its_factory_made(
    memory_store: MemoryStore,
) -> None:
    """Ctrl-C inside a task: the made executor is shut down cancelling, then closed."""

    @task
    def interrupted() -> None:
        raise KeyboardInterrupt

    @dag
    def stops() -> None:
        interrupted()

    with pytest.raises(KeyboardInterrupt):
        stops.run(executor=Tracked, store=memory_store)
    (made,) = Tracked.made
    assert (made.shutdowns, made.closes) == ([True], 1)
    assert memory_store.list_runs()[0].state == "failed"


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: 42, r"factory .* returned 42, which is not an object with the pipekit"),
        (lambda: 1 / 0, r"factory .* raised ZeroDivisionError: division by zero; fix the factory"),
        (functools.partial(ThreadsExecutor, unknown=1), r"factory .* raised TypeError"),
    ],
    ids=["not-an-executor", "raises", "bad-arguments"],
)
def test_a_bad_factory_is_an_error_naming_it_before_the_run_is_recorded(
    memory_store: MemoryStore, factory: Any, message: str
) -> None:
    """A factory that fails or makes something else raises PipekitError; nothing is recorded."""
    with pytest.raises(PipekitError, match=message):
        pair.run(executor=factory, store=memory_store)
    assert memory_store.list_runs() == []


def test_max_workers_with_a_factory_says_to_set_it_in_the_factory() -> None:
    """max_workers goes with names; given with a factory, the message says where it goes."""
    with pytest.raises(PipekitError, match=r"max_workers=3 .* is a factory; set max_workers on"):
        make_executor(Tracked, 3)
    with pytest.raises(PipekitError, match=r"max_workers=3 .* is an object; set max_workers on"):
        check_executor(Tracked(), 3)
    assert Tracked.made and all(e.starts == 0 for e in Tracked.made)  # nothing started


def test_check_executor_does_not_call_the_factory() -> None:
    """Checking arguments up front makes nothing: a factory is only called by a run."""
    calls: list[int] = []

    def factory() -> ThreadsExecutor:
        calls.append(1)
        return ThreadsExecutor()

    check_executor(factory, None)
    with pytest.raises(PipekitError, match="'nope' is not known"):
        check_executor("nope", None)
    with pytest.raises(PipekitError, match="neither a name"):
        check_executor(object(), None)  # type: ignore[arg-type]
    assert calls == []


def test_overlapping_backfill_dates_each_thread_makes_one_and_keeps_it(
    memory_store: MemoryStore,
) -> None:
    """max_active_runs=2 with a factory: at most one executor per backfill thread, kept
    from date to date, and every one closed at the end."""
    report = backfill(
        backfillable,
        "2024-01-01",
        "2024-01-06",
        max_active_runs=2,
        executor=lambda: Tracked(quick=0),
        store=memory_store,
        progress=False,
    )
    assert len(report.succeeded) == 6
    assert report.failed == []
    assert 1 <= len(Tracked.made) <= 2
    assert sum(e.starts for e in Tracked.made) == 6
    assert all(e.closes == 1 and e.shutdowns[-1] is False for e in Tracked.made)


def test_a_bad_factory_stops_a_backfill_before_any_date_runs(memory_store: MemoryStore) -> None:
    """The first date makes the executor; a factory that fails raises before any task runs."""
    with pytest.raises(PipekitError, match="returned None"):
        backfill(
            backfillable,
            "2024-01-01",
            "2024-01-03",
            executor=lambda: None,
            store=memory_store,
            progress=False,
        )
    assert memory_store.list_runs() == []
    assert dags.CALLS == []


def test_max_workers_with_a_factory_is_refused_before_a_backfill_runs(
    memory_store: MemoryStore,
) -> None:
    """Checked up front, like every other backfill argument."""
    with pytest.raises(PipekitError, match="max_workers=2"):
        backfill(
            backfillable,
            "2024-01-01",
            "2024-01-03",
            executor=Tracked,
            max_workers=2,
            store=memory_store,
            progress=False,
        )
    assert Tracked.made == []
    assert memory_store.list_runs() == []


def test_serve_gives_each_run_an_executor_of_its_own(memory_store: MemoryStore) -> None:
    """The scheduler's overlapping runs each call the factory; each executor is closed."""
    runs = serve(
        nightly,
        store=memory_store,
        once=True,
        clock=FakeClock(dt.datetime(2024, 1, 4, 0, 30, tzinfo=dt.UTC)),
        executor=lambda: Tracked(quick=0),
    )
    assert [r.state for r in runs] == ["success"] * 3
    assert len(Tracked.made) == 3
    assert all((e.starts, e.closes) == (1, 1) for e in Tracked.made)
