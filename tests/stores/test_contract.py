"""The store contract: every store, given the same changes, reads back the same history.

Each test runs once per store kind (see the ``store`` fixture in conftest.py).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from pipekit.errors import StoreError
from pipekit.run import Attempt, TaskRun
from pipekit.state import State
from pipekit.stores import (
    AttemptEnded,
    AttemptStarted,
    Change,
    ResultSaved,
    RunEnded,
    RunResumed,
    RunStarted,
    Store,
    TaskStateSet,
)

from .conftest import STORES

pytestmark = pytest.mark.parametrize("store", STORES, indirect=True)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    """Return the instant ``seconds`` after T0."""
    return T0 + timedelta(seconds=seconds)


def started(
    run_id: str = "r1",
    tasks: Sequence[str] = ("extract", "transform", "load"),
    *,
    dag: str = "etl",
    when: float = 0,
    params: Mapping[str, Any] | None = None,
) -> RunStarted:
    """A RunStarted change with defaults that tests override as needed."""
    return RunStarted(run_id, dag, params or {}, list(tasks), at(when))


def run_once(
    store: Store, run_id: str, task: str, *, when: float, state: State = State.SUCCESS
) -> None:
    """Record a whole run of one task that ends in ``state``, one change per call."""
    store.record([started(run_id, [task], when=when)])
    store.record([AttemptStarted(run_id, task, 1, at(when + 1))])
    store.record([AttemptEnded(run_id, task, 1, state, at(when + 2), state)])
    store.record([RunEnded(run_id, state, at(when + 3))])


def test_conforms_to_the_store_protocol(store: Store) -> None:
    """Every store is a runtime instance of the Store protocol."""
    assert isinstance(store, Store)


def test_run_started_queues_every_task_in_order(store: Store) -> None:
    """RunStarted makes a running run whose tasks are queued, unattempted, in the given order."""
    store.record(
        [
            RunStarted(
                "r1",
                "etl",
                {"day": "2024-05-01"},
                ["extract", "transform", "load"],
                at(0),
                module="etl_dags",
                file="/srv/etl_dags.py",
            )
        ]
    )

    run = store.get_run("r1")

    assert (run.id, run.dag, run.state) == ("r1", "etl", State.RUNNING)
    assert (run.started_at, run.ended_at, run.error) == (at(0), None, None)
    assert (run.module, run.file) == ("etl_dags", "/srv/etl_dags.py")
    assert run.params == {"day": "2024-05-01"}
    assert list(run.tasks) == ["extract", "transform", "load"]
    assert list(run.tasks.values()) == [
        TaskRun(t, State.QUEUED) for t in ["extract", "transform", "load"]
    ]


def test_a_retried_task_keeps_its_first_start_and_clears_its_error(store: Store) -> None:
    """A failed attempt requeues the task with its error; a success clears the task's error."""
    store.record([started(tasks=["a"])])

    store.record([AttemptStarted("r1", "a", 1, at(1))])
    assert store.get_run("r1").tasks["a"] == TaskRun(
        "a", State.RUNNING, attempts=1, started_at=at(1)
    )

    store.record([AttemptEnded("r1", "a", 1, State.FAILED, at(2), State.QUEUED, "boom")])
    assert store.get_run("r1").tasks["a"] == TaskRun(
        "a", State.QUEUED, attempts=1, error="boom", started_at=at(1), ended_at=at(2)
    )

    store.record([AttemptStarted("r1", "a", 2, at(5))])
    assert store.get_run("r1").tasks["a"] == TaskRun(
        "a", State.RUNNING, attempts=2, error="boom", started_at=at(1), ended_at=at(2)
    )

    store.record(
        [
            AttemptEnded("r1", "a", 2, State.SUCCESS, at(6), State.SUCCESS, "warning: slow"),
            RunEnded("r1", State.SUCCESS, at(7)),
        ]
    )
    run = store.get_run("r1")
    assert run.tasks["a"] == TaskRun(
        "a", State.SUCCESS, attempts=2, started_at=at(1), ended_at=at(6)
    )
    assert (run.state, run.ended_at, run.duration) == (State.SUCCESS, at(7), 7.0)
    assert store.attempts("r1") == [
        Attempt("r1", "a", 1, State.FAILED, at(1), at(2), "boom"),
        Attempt("r1", "a", 2, State.SUCCESS, at(5), at(6), "warning: slow"),
    ]


def test_a_failed_task_and_its_never_run_descendants(store: Store) -> None:
    """A final failure keeps the error; TaskStateSet marks descendants without attempts."""
    store.record([started(tasks=["a", "b", "c"])])
    store.record([AttemptStarted("r1", "a", 1, at(1))])
    store.record(
        [
            AttemptEnded("r1", "a", 1, State.FAILED, at(2), State.FAILED, "ValueError: bad"),
            TaskStateSet("r1", ["b", "c"], State.UPSTREAM_FAILED, at(2)),
            RunEnded("r1", State.FAILED, at(3)),
        ]
    )

    run = store.get_run("r1")

    assert run.state == State.FAILED
    assert run.failed_tasks == ["a"]
    assert run.tasks["a"].error == "ValueError: bad"
    assert run.tasks["b"] == TaskRun("b", State.UPSTREAM_FAILED)
    assert run.tasks["c"] == TaskRun("c", State.UPSTREAM_FAILED)


def test_run_ended_records_a_run_level_error(store: Store) -> None:
    """RunEnded stores the run's final state, end time and error."""
    store.record([started(), RunEnded("r1", State.FAILED, at(9), "interrupted")])

    run = store.get_run("r1")

    assert (run.state, run.ended_at, run.error) == (State.FAILED, at(9), "interrupted")


def test_list_runs_is_newest_first_with_ties_newest_recorded_first(store: Store) -> None:
    """list_runs orders by start time descending, and same-instant runs by recording order."""
    for run_id, when in [("a", 0), ("b", 10), ("c", 5), ("d", 10)]:
        store.record([started(run_id, when=when)])

    assert [r.id for r in store.list_runs()] == ["d", "b", "c", "a"]


def test_list_runs_filters_by_dag_and_state(store: Store) -> None:
    """list_runs keeps only runs of the given DAG and/or state (a State or a plain string)."""
    run_once(store, "x-ok", "t", when=0)
    run_once(store, "x-bad", "t", when=10, state=State.FAILED)
    run_once(store, "y-ok", "t", when=20)
    store.record([started("x-new", dag="x", when=30)])
    store.record([started("y-new", dag="y", when=40)])

    by_dag = {r.id: r.dag for r in store.list_runs()}
    assert by_dag == {"x-ok": "etl", "x-bad": "etl", "y-ok": "etl", "x-new": "x", "y-new": "y"}
    assert [r.id for r in store.list_runs(dag="etl")] == ["y-ok", "x-bad", "x-ok"]
    assert [r.id for r in store.list_runs(state=State.FAILED)] == ["x-bad"]
    assert [r.id for r in store.list_runs(state="success")] == ["y-ok", "x-ok"]
    assert [r.id for r in store.list_runs(state="running")] == ["y-new", "x-new"]
    assert [r.id for r in store.list_runs(dag="x", state="running")] == ["x-new"]
    assert store.list_runs(dag="x", state="success") == []
    assert store.list_runs(dag="nope") == []


def test_list_runs_limit_keeps_the_newest_with_their_tasks(store: Store) -> None:
    """limit returns that many newest runs, each with all its tasks; 0 returns none."""
    for i in range(5):
        store.record([started(f"r{i}", [f"t{i}", "shared"], when=i)])

    newest = store.list_runs(limit=2)

    assert [r.id for r in newest] == ["r4", "r3"]
    assert [list(r.tasks) for r in newest] == [["t4", "shared"], ["t3", "shared"]]
    assert store.list_runs(limit=0) == []
    assert len(store.list_runs(limit=50)) == 5
    assert [r.id for r in store.list_runs(dag="etl", state="running", limit=1)] == ["r4"]


def test_list_runs_returns_the_same_runs_as_get_run(store: Store) -> None:
    """Runs from list_runs equal those from get_run, including a run with no tasks."""
    run_once(store, "one", "t", when=0)
    store.record([started("empty", [], when=1)])
    store.record([started("three", ["a", "b", "c"], when=2, params={"n": [1, 2]})])

    listed = store.list_runs()

    assert listed == [store.get_run(r) for r in ["three", "empty", "one"]]
    assert listed[1].tasks == {}


def test_list_runs_rejects_a_negative_limit(store: Store) -> None:
    """A negative limit is a caller error, not 'no limit'."""
    with pytest.raises(ValueError, match="-1"):
        store.list_runs(limit=-1)


def test_attempts_are_oldest_first_then_in_task_order(store: Store) -> None:
    """attempts() orders by start time, ties by task order then number; task_id filters."""
    store.record([started(tasks=["a", "b"])])
    store.record([AttemptStarted("r1", "b", 1, at(1)), AttemptStarted("r1", "a", 1, at(1))])
    store.record([AttemptEnded("r1", "a", 1, State.FAILED, at(2), State.QUEUED, "x")])
    store.record([AttemptStarted("r1", "a", 2, at(3))])

    history = store.attempts("r1")

    assert [(a.task_id, a.number) for a in history] == [("a", 1), ("b", 1), ("a", 2)]
    assert history[2] == Attempt("r1", "a", 2, State.RUNNING, at(3))
    assert store.attempts("r1", "b") == [Attempt("r1", "b", 1, State.RUNNING, at(1))]
    assert [a.number for a in store.attempts("r1", "a")] == [1, 2]


def test_attempts_of_a_run_or_task_that_never_ran_are_empty(store: Store) -> None:
    """A recorded run or task with no attempts has an empty history, not an error."""
    store.record([started()])

    assert store.attempts("r1") == []
    assert store.attempts("r1", "load") == []


def test_reading_an_unknown_run_raises_naming_it(store: Store) -> None:
    """get_run and attempts of an unknown id raise StoreError whose message names the id."""
    store.record([started()])

    with pytest.raises(StoreError, match="'no-such-run'"):
        store.get_run("no-such-run")
    with pytest.raises(StoreError, match="'no-such-run'"):
        store.attempts("no-such-run")


def test_attempts_of_an_unknown_task_raise(store: Store) -> None:
    """attempts() of a task the run does not have raises StoreError naming the task."""
    store.record([started()])

    with pytest.raises(StoreError, match="'nope'"):
        store.attempts("r1", "nope")


UNKNOWN_RUN_CHANGES: list[Change] = [
    AttemptStarted("ghost", "a", 1, at(1)),
    AttemptEnded("ghost", "a", 1, State.SUCCESS, at(1), State.SUCCESS),
    TaskStateSet("ghost", ["a"], State.SKIPPED, at(1)),
    TaskStateSet("ghost", [], State.SKIPPED, at(1)),
    RunEnded("ghost", State.SUCCESS, at(1)),
]


@pytest.mark.parametrize("change", UNKNOWN_RUN_CHANGES, ids=lambda c: type(c).__name__)
def test_a_change_to_an_unknown_run_raises(store: Store, change: Change) -> None:
    """Changes that reference a run never started raise StoreError naming it."""
    store.record([started()])

    with pytest.raises(StoreError, match="'ghost'"):
        store.record([change])


UNKNOWN_TASK_CHANGES: list[Change] = [
    AttemptStarted("r1", "zzz", 1, at(1)),
    AttemptEnded("r1", "zzz", 1, State.SUCCESS, at(1), State.SUCCESS),
    TaskStateSet("r1", ["load", "zzz"], State.SKIPPED, at(1)),
]


@pytest.mark.parametrize("change", UNKNOWN_TASK_CHANGES, ids=lambda c: type(c).__name__)
def test_a_change_to_an_unknown_task_raises_and_applies_nothing(
    store: Store, change: Change
) -> None:
    """Changes that reference a task the run lacks raise StoreError and leave tasks as they were."""
    store.record([started()])

    with pytest.raises(StoreError, match="'zzz'"):
        store.record([change])
    assert all(t.state == State.QUEUED for t in store.get_run("r1").tasks.values())


def test_ending_an_attempt_that_never_started_raises(store: Store) -> None:
    """AttemptEnded for a known task but an unrecorded attempt number raises StoreError."""
    store.record([started(), AttemptStarted("r1", "load", 1, at(1))])

    with pytest.raises(StoreError, match="no attempt 2"):
        store.record([AttemptEnded("r1", "load", 2, State.SUCCESS, at(2), State.SUCCESS)])


def test_recording_a_run_id_twice_raises_and_keeps_the_first(store: Store) -> None:
    """A second RunStarted with a recorded id raises StoreError; the first run is untouched."""
    store.record([started(params={"v": 1})])

    with pytest.raises(StoreError, match="'r1' is already recorded"):
        store.record([started(dag="other", params={"v": 2})])
    assert (store.get_run("r1").dag, store.get_run("r1").params) == ("etl", {"v": 1})


def test_recording_an_attempt_number_twice_raises(store: Store) -> None:
    """A second AttemptStarted with the same task and number raises StoreError."""
    store.record([started(), AttemptStarted("r1", "load", 1, at(1))])

    with pytest.raises(StoreError, match="attempt 1 of task 'load'"):
        store.record([AttemptStarted("r1", "load", 1, at(2))])
    assert store.attempts("r1") == [Attempt("r1", "load", 1, State.RUNNING, at(1))]


def test_a_run_listing_a_task_twice_is_refused(store: Store) -> None:
    """RunStarted with a repeated task id raises StoreError and records no run."""
    with pytest.raises(StoreError, match="repeat"):
        store.record([started(tasks=["a", "b", "a"])])
    assert store.list_runs() == []


def test_params_round_trip_with_nesting(store: Store) -> None:
    """JSON params (nested lists and dicts, unicode, null, floats) read back equal."""
    params = {
        "day": "2024-05-01",
        "ratio": 0.25,
        "n": 3,
        "flag": True,
        "none": None,
        "tables": ["a", "b", {"c": [1, 2, {"d": None}]}],
        "opts": {"nested": {"deeper": [[], {}], "name": "zoë ✓"}},
    }
    store.record([started(params=params)])

    assert store.get_run("r1").params == params
    assert store.list_runs()[0].params == params


def test_params_that_are_not_json_raise_and_record_nothing(store: Store) -> None:
    """Params holding a non-JSON value raise StoreError naming the run; no run is recorded."""
    with pytest.raises(StoreError, match="'r1'"):
        store.record([started(params={"when": object()})])
    assert store.list_runs() == []


def test_returned_params_are_copies(store: Store) -> None:
    """Mutating a returned run's params does not change the recorded history."""
    store.record([started(params={"tables": ["a"]})])

    store.get_run("r1").params["tables"].append("b")

    assert store.get_run("r1").params == {"tables": ["a"]}


def test_recording_nothing_is_a_no_op(store: Store) -> None:
    """record() of an empty sequence changes nothing and does not fail."""
    store.record([])
    store.record(())

    assert store.list_runs() == []


def test_a_failing_call_applies_none_of_its_changes_to_a_new_run(store: Store) -> None:
    """When the second change of a call is invalid, the run started by the first is absent."""
    with pytest.raises(StoreError, match="'ghost'"):
        store.record([started(), RunEnded("ghost", State.SUCCESS, at(1))])

    assert store.list_runs() == []
    with pytest.raises(StoreError, match="'r1'"):
        store.get_run("r1")


def test_a_failing_call_applies_none_of_its_changes_to_an_existing_run(store: Store) -> None:
    """Earlier changes of a failing call are undone, and the store stays usable afterwards."""
    store.record([started(tasks=["a"])])
    before = store.get_run("r1")

    with pytest.raises(StoreError, match="bogus"):
        store.record(
            [
                AttemptStarted("r1", "a", 1, at(1)),
                AttemptEnded("r1", "a", 1, State.SUCCESS, at(2), State.SUCCESS),
                RunEnded("r1", "bogus", at(3)),  # type: ignore[arg-type]
            ]
        )

    assert store.get_run("r1") == before
    assert store.attempts("r1") == []
    store.record([AttemptStarted("r1", "a", 1, at(4))])
    assert store.get_run("r1").tasks["a"].state == State.RUNNING


def test_a_naive_timestamp_is_refused(store: Store) -> None:
    """A datetime without a time zone raises StoreError rather than being guessed at."""
    naive = datetime(2024, 5, 1, 12, 0)

    with pytest.raises(StoreError, match="time zone"):
        store.record([RunStarted("r1", "etl", {}, ["a"], naive)])
    assert store.list_runs() == []


def test_timestamps_read_back_as_utc_with_microseconds(store: Store) -> None:
    """Aware timestamps in any zone read back as equal UTC datetimes, microseconds kept."""
    paris = timezone(timedelta(hours=2))
    start = datetime(2024, 5, 1, 14, 0, 0, 0, tzinfo=paris)
    end = datetime(2024, 5, 1, 14, 0, 1, 123456, tzinfo=paris)
    store.record([RunStarted("r1", "etl", {}, [], start), RunEnded("r1", State.SUCCESS, end)])

    run = store.get_run("r1")

    assert run.started_at == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert run.started_at.tzinfo is UTC
    assert run.ended_at == end
    assert run.ended_at is not None
    assert run.ended_at.microsecond == 123456


def test_recording_something_that_is_not_a_change_raises_type_error(store: Store) -> None:
    """record() rejects objects that are not changes with TypeError, applying nothing."""
    with pytest.raises(TypeError, match="not a change"):
        store.record([started(), "RunEnded"])  # type: ignore[list-item]
    assert store.list_runs() == []


def test_concurrent_threads_lose_no_changes(store: Store) -> None:
    """Threads recording their own runs at once all find every run complete afterwards."""
    threads, runs_each = 8, 15
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            barrier.wait()
            for i in range(runs_each):
                run_once(store, f"w{worker}-{i}", "t", when=i)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(w,)) for w in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()

    assert errors == []
    runs = store.list_runs()
    assert len(runs) == threads * runs_each
    assert {r.state for r in runs} == {State.SUCCESS}
    assert {r.tasks["t"].attempts for r in runs} == {1}


def test_a_closed_store_refuses_use(store: Store) -> None:
    """After close(), reads and writes raise StoreError; closing again is harmless."""
    store.record([started()])
    store.close()

    with pytest.raises(StoreError, match="closed"):
        store.get_run("r1")
    with pytest.raises(StoreError, match="closed"):
        store.record([RunEnded("r1", State.SUCCESS, at(1))])
    store.close()


def test_run_resumed_reopens_the_run_and_resets_tasks(store: Store) -> None:
    """RunResumed: run running again, reset tasks queued without error or times (their
    re-execution's times replace them), attempts and the attempt history kept."""
    store.record([started("r1", ["a", "b"])])
    store.record([AttemptStarted("r1", "a", 1, at(1))])
    store.record([AttemptEnded("r1", "a", 1, State.SUCCESS, at(2), State.SUCCESS)])
    store.record([AttemptStarted("r1", "b", 1, at(3))])
    store.record([AttemptEnded("r1", "b", 1, State.FAILED, at(4), State.FAILED, "boom")])
    store.record([RunEnded("r1", State.FAILED, at(5), "x")])
    store.record([RunResumed("r1", at(10), ["b"], ["c"])])
    run = store.get_run("r1")
    assert run.state == "running" and run.ended_at is None and run.error is None
    assert run.started_at == at(0)
    assert list(run.tasks) == ["a", "b", "c"]
    b = run.tasks["b"]
    assert (b.state, b.attempts, b.error, b.ended_at, b.started_at) == (
        "queued",
        1,
        None,
        None,
        None,
    )
    assert run.tasks["a"].state == "success"
    assert run.tasks["a"].started_at == at(1)
    assert run.tasks["c"] == TaskRun("c", State.QUEUED)
    store.record([AttemptStarted("r1", "b", 2, at(11))])
    store.record([AttemptEnded("r1", "b", 2, State.SUCCESS, at(12), State.SUCCESS)])
    assert [(a.number, a.started_at) for a in store.attempts("r1", "b")] == [
        (1, at(3)),
        (2, at(11)),
    ]
    b = store.get_run("r1").tasks["b"]
    assert (b.attempts, b.started_at, b.ended_at) == (2, at(11), at(12))


def test_run_resumed_of_unknown_run_or_task_changes_nothing(store: Store) -> None:
    """Resuming an unknown run or task raises StoreError and applies nothing."""
    store.record([started("r1", ["a"])])
    with pytest.raises(StoreError, match="'nope'"):
        store.record([RunResumed("nope", at(1), [])])
    with pytest.raises(StoreError):
        store.record([RunResumed("r1", at(1), ["ghost"])])
    with pytest.raises(StoreError):
        store.record([RunResumed("r1", at(1), [], ["a"])])
    assert list(store.get_run("r1").tasks) == ["a"]


def test_task_state_set_with_a_reason_stores_it_as_the_error(store: Store) -> None:
    """A skip reason given with TaskStateSet reads back as the task's error text."""
    store.record([started("r1", ["a", "b"])])
    store.record([TaskStateSet("r1", ["a"], State.SKIPPED, at(1), "output exists: x.csv")])
    store.record([TaskStateSet("r1", ["b"], State.SKIPPED, at(1))])
    run = store.get_run("r1")
    assert run.tasks["a"].error == "output exists: x.csv"
    assert run.tasks["b"].error is None


def test_a_batch_with_whole_attempts_reads_back_like_separate_calls(store: Store) -> None:
    """Start and end of attempts in one record() call (group commit) give the same history."""
    store.record(
        [
            started("r1", ["a", "b"]),
            AttemptStarted("r1", "a", 1, at(1)),
            AttemptStarted("r1", "b", 1, at(1)),
            AttemptEnded("r1", "a", 1, State.FAILED, at(2), State.QUEUED, "flaky"),
            AttemptStarted("r1", "a", 2, at(3)),
            ResultSaved("r1", "a", b"value"),
            AttemptEnded("r1", "a", 2, State.SUCCESS, at(4), State.SUCCESS),
            AttemptEnded("r1", "b", 1, State.FAILED, at(5), State.FAILED, "boom"),
            RunEnded("r1", State.FAILED, at(6)),
        ]
    )
    run = store.get_run("r1")
    a, b = run.tasks["a"], run.tasks["b"]
    assert (a.state, a.attempts, a.error, a.started_at, a.ended_at) == (
        "success",
        2,
        None,
        at(1),
        at(4),
    )
    assert (b.state, b.attempts, b.error, b.ended_at) == ("failed", 1, "boom", at(5))
    history = [(x.task_id, x.number, x.state, x.error) for x in store.attempts("r1")]
    assert history == [
        ("a", 1, "failed", "flaky"),
        ("b", 1, "failed", "boom"),
        ("a", 2, "success", None),
    ]
    assert store.load_result("r1", "a") == b"value"
    with pytest.raises(StoreError):
        store.record(
            [
                AttemptStarted("r1", "a", 2, at(7)),
                AttemptEnded("r1", "a", 2, State.SUCCESS, at(8), State.SUCCESS),
            ]
        )
