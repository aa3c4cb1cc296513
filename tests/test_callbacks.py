"""Callbacks: on_failure/on_success/on_retry on tasks and DAGs get Events and never change a run."""

from __future__ import annotations

import dataclasses
import datetime as dt
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from structlog.testing import capture_logs

import pipekit
from pipekit import DefinitionError, Event, RunFailed, dag, task
from pipekit.stores import MemoryStore


class Recorder:
    """A callback that keeps every Event it is called with (callbacks run on another thread)."""

    def __init__(self, name: str = "recorder") -> None:
        self.__name__ = name
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)

    def kinds(self) -> list[tuple[str, str | None]]:
        """(kind, task) of each event, in call order."""
        return [(e.kind, e.task) for e in self.events]


def boom(event: Event) -> None:
    """A notifier that is down."""
    raise RuntimeError("notifier down")


def flaky_dag(*, fail_load: bool = True, **callbacks: Any) -> tuple[pipekit.DAG, dict[str, int]]:
    """extract -> load: load fails (ValueError) when fail_load; task callbacks go on load."""
    calls = {"load": 0}
    task_cbs = {k[5:]: v for k, v in callbacks.items() if k.startswith("task_")}
    dag_cbs = {k[4:]: v for k, v in callbacks.items() if k.startswith("dag_")}

    @task
    def extract(ds: dt.date) -> int:
        return ds.day

    @task(**task_cbs)
    def load(n: int, limit: int) -> int:
        calls["load"] += 1
        if fail_load:
            raise ValueError(f"bad row {n}\nmore detail on a second line")
        return n * limit

    @dag(name="cb_etl", **dag_cbs)
    def etl(ds: dt.date, limit: int = 3) -> None:
        load(extract(ds), limit)

    return etl, calls


def run(d: pipekit.DAG, **params: Any) -> pipekit.Run:
    """Run ``d`` on 2024-01-05 in memory, sequentially, without raising on failure."""
    return d.run(
        ds="2024-01-05",
        store=MemoryStore(),
        executor="sequential",
        raise_on_failure=False,
        **params,
    )


# -- the events --------------------------------------------------------------------------------


def test_task_on_failure_gets_an_event_with_every_field() -> None:
    """A task's on_failure gets kind, dag, run id, task, JSON params, attempt, state and error."""
    rec = Recorder()
    d, _ = flaky_dag(task_on_failure=rec)
    r = run(d, limit=7)
    assert r.state == "failed"
    (event,) = rec.events
    assert isinstance(event, Event)
    assert event.kind == "failure"
    assert event.dag == "cb_etl"
    assert event.run_id == r.id
    assert event.task == "load"
    assert dict(event.params) == {"ds": "2024-01-05", "limit": 7}
    assert event.attempt == 1
    assert event.state == "failed"
    assert event.error == "ValueError: bad row 5"
    assert event.summary is None and tuple(event.failed_tasks) == ()


def test_an_events_text_names_the_dag_the_params_and_the_error() -> None:
    """event.text is a readable message: DAG, task, params, run id and the error."""
    rec = Recorder()
    d, _ = flaky_dag(task_on_failure=rec)
    r = run(d)
    text = rec.events[0].text
    assert text.splitlines()[0] == "pipekit: task load of cb_etl failed (ds=2024-01-05, limit=3)"
    assert r.id in text
    assert "error: ValueError: bad row 5" in text
    assert "second line" not in text


def test_task_on_success_gets_a_success_event() -> None:
    """A task's on_success fires with state success, its attempt, and no error."""
    rec = Recorder()
    d, _ = flaky_dag(fail_load=False, task_on_success=rec)
    r = run(d)
    (event,) = rec.events
    assert (event.kind, event.task, event.state, event.attempt) == ("success", "load", "success", 1)
    assert event.error is None and event.run_id == r.id
    assert "task load of cb_etl succeeded" in event.text


def test_on_retry_fires_for_each_failed_attempt_that_will_be_retried() -> None:
    """retries=2 failing twice then succeeding: two retry events (attempts 1, 2), state queued."""
    task_rec, dag_rec, success = Recorder(), Recorder(), Recorder()

    @task(retries=2, on_retry=task_rec, on_success=success)
    def wobbly() -> str:
        attempt = pipekit.context().attempt
        if attempt < 3:
            raise ConnectionError(f"blip {attempt}")
        return "ok"

    @dag(name="wobbly_dag", on_retry=dag_rec)
    def wobbly_dag(ds: str) -> None:
        wobbly()

    r = wobbly_dag.run(ds="x", store=MemoryStore(), executor="sequential")
    assert r.state == "success"
    for rec in (task_rec, dag_rec):
        assert [(e.kind, e.task, e.attempt, e.state) for e in rec.events] == [
            ("retry", "wobbly", 1, "queued"),
            ("retry", "wobbly", 2, "queued"),
        ]
        assert [e.error for e in rec.events] == [
            "ConnectionError: blip 1",
            "ConnectionError: blip 2",
        ]
        assert all(e.run_id == r.id and e.params == {"ds": "x"} for e in rec.events)
    assert "failed attempt 1 and will be retried" in task_rec.events[0].text
    assert [e.attempt for e in success.events] == [3]


def test_task_on_failure_fires_once_after_the_retries_are_spent() -> None:
    """A task that always fails with retries=1: one retry event, then one failure (attempt 2)."""
    retry, failure = Recorder(), Recorder()

    @task(retries=1, on_retry=retry, on_failure=failure)
    def hopeless() -> None:
        raise OSError("disk full")

    @dag(name="hopeless_dag")
    def hopeless_dag() -> None:
        hopeless()

    hopeless_dag.run(store=MemoryStore(), raise_on_failure=False, executor="sequential")
    assert [e.attempt for e in retry.events] == [1]
    assert [(e.kind, e.attempt, e.error) for e in failure.events] == [
        ("failure", 2, "OSError: disk full")
    ]


def test_dag_on_failure_gets_one_run_event_naming_the_failed_tasks() -> None:
    """A DAG's on_failure fires once per failed run: no task, no attempt, the failed tasks."""
    rec = Recorder()
    d, _ = flaky_dag(dag_on_failure=rec)
    r = run(d)
    (event,) = rec.events
    assert (event.kind, event.task, event.attempt, event.state) == ("failure", None, None, "failed")
    assert event.run_id == r.id and event.dag == "cb_etl"
    assert list(event.failed_tasks) == ["load"]
    assert event.error == "load: ValueError: bad row 5"
    assert dict(event.params) == {"ds": "2024-01-05", "limit": 3}
    assert event.text.splitlines()[0] == "pipekit: run of cb_etl failed (ds=2024-01-05, limit=3)"
    assert "failed tasks: load" in event.text


def test_dag_on_success_gets_one_run_event() -> None:
    """A DAG's on_success fires once when the run succeeds; on_failure does not."""
    ok, bad = Recorder(), Recorder()
    d, _ = flaky_dag(fail_load=False, dag_on_success=ok, dag_on_failure=bad)
    r = run(d)
    assert bad.events == []
    (event,) = ok.events
    assert (event.kind, event.task, event.state, event.error) == ("success", None, "success", None)
    assert event.run_id == r.id and list(event.failed_tasks) == []


def test_task_and_dag_events_arrive_in_the_order_they_happened() -> None:
    """One callback on both task and DAG sees the task's failure before the run's."""
    rec = Recorder()
    d, _ = flaky_dag(task_on_failure=rec, dag_on_failure=rec)
    run(d)
    assert rec.kinds() == [("failure", "load"), ("failure", None)]


def test_events_are_frozen() -> None:
    """An Event cannot be changed by one callback under the next one's feet."""
    rec = Recorder()
    d, _ = flaky_dag(task_on_failure=rec)
    run(d)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.events[0].state = "success"  # type: ignore[misc]


# -- lists, slow and broken callbacks ----------------------------------------------------------


def test_a_list_of_callbacks_is_called_in_order() -> None:
    """on_failure=[a, b, c] calls a, then b, then c, each with the same event."""
    order: list[tuple[str, Event]] = []

    def make(name: str) -> Callable[[Event], None]:
        return lambda event: order.append((name, event))

    d, _ = flaky_dag(task_on_failure=[make("a"), make("b"), make("c")])
    run(d)
    assert [name for name, _ in order] == ["a", "b", "c"]
    assert order[0][1] is order[1][1] is order[2][1]


def test_slow_callbacks_have_all_been_called_when_run_returns() -> None:
    """run() returns only once every callback, even a 50 ms one, has been called."""
    done: list[str] = []

    def slow(event: Event) -> None:
        time.sleep(0.05)
        done.append(f"{event.kind}:{event.task}")

    d, _ = flaky_dag(task_on_failure=slow, dag_on_failure=slow)
    run(d)
    assert done == ["failure:load", "failure:None"]


def test_callbacks_do_not_run_on_the_task_thread() -> None:
    """Callbacks run on pipekit's callback thread, so a slow webhook never holds up tasks."""
    threads: list[str] = []
    d, _ = flaky_dag(task_on_failure=lambda e: threads.append(threading.current_thread().name))
    run(d)
    assert threads == ["pipekit-callbacks"]


def test_a_callback_that_raises_is_logged_and_the_run_still_succeeds() -> None:
    """A broken on_success is logged as callback_failed; the run is still a success."""
    after = Recorder()
    d, _ = flaky_dag(fail_load=False, task_on_success=[boom, after], dag_on_success=boom)
    with capture_logs() as logs:
        r = d.run(ds="2024-01-05", store=MemoryStore(), executor="sequential")
    assert r.state == "success"
    assert [e.task for e in after.events] == ["load"]  # later callbacks still run
    failed = [e for e in logs if e["event"] == "callback_failed"]
    assert [(e["callback"], e["kind"], e["task"]) for e in failed] == [
        ("boom", "success", "load"),
        ("boom", "success", None),
    ]
    assert all(e["error"] == "RuntimeError: notifier down" for e in failed)
    assert all(e["log_level"] == "warning" and e["run_id"] == r.id for e in failed)


def exits(event: Event) -> None:
    """A callback that calls sys.exit(), as a careless script might."""
    sys.exit(3)


class Unprintable(Exception):
    """An exception whose str() raises."""

    def __str__(self) -> str:
        raise RuntimeError("no text")


def unprintable(event: Event) -> None:
    """A callback raising an exception that cannot be turned into text."""
    raise Unprintable()


def test_a_callback_calling_sys_exit_is_logged_and_later_callbacks_still_run() -> None:
    """SystemExit (a BaseException) in a callback no longer ends the callback thread."""
    after = Recorder()
    d, _ = flaky_dag(
        fail_load=False, task_on_success=[exits, unprintable, after], dag_on_success=after
    )
    with capture_logs() as logs:
        r = d.run(ds="2024-01-05", store=MemoryStore(), executor="sequential")
    assert r.state == "success"
    assert [(e.kind, e.task) for e in after.events] == [("success", "load"), ("success", None)]
    failed = [e for e in logs if e["event"] == "callback_failed"]
    assert [(e["callback"], e["error"]) for e in failed] == [
        ("exits", "SystemExit: 3"),
        ("unprintable", "Unprintable: <exception str() failed>"),
    ]


def test_a_callback_that_raises_does_not_change_a_failed_run() -> None:
    """A broken on_failure: the run still fails with RunFailed for the task's error."""
    d, _ = flaky_dag(task_on_failure=boom, dag_on_failure=boom)
    with capture_logs() as logs, pytest.raises(RunFailed) as info:
        d.run(ds="2024-01-05", store=MemoryStore(), executor="sequential")
    assert info.value.run.state == "failed"
    assert info.value.run.tasks["load"].state == "failed"
    assert "notifier down" not in str(info.value)
    assert len([e for e in logs if e["event"] == "callback_failed"]) == 2


def test_a_notifier_raising_pipekit_error_is_contained_like_any_other_error() -> None:
    """A notifier's PipekitError (as Webhook and Email raise) is logged for each call."""

    def not_found(event: Event) -> None:
        raise pipekit.PipekitError("webhook answered HTTP 404")

    d, _ = flaky_dag(fail_load=False, dag_on_success=[not_found, not_found])
    with capture_logs() as logs:
        r = run(d)
    assert r.state == "success"
    errors = [e["error"] for e in logs if e["event"] == "callback_failed"]
    assert errors == ["PipekitError: webhook answered HTTP 404"] * 2


# -- definition-time checks --------------------------------------------------------------------


@pytest.mark.parametrize("option", ["on_failure", "on_success", "on_retry"])
def test_a_non_callable_task_callback_is_refused_at_definition(option: str) -> None:
    """@task(on_x='not callable') is a DefinitionError naming the option and the value."""
    with pytest.raises(DefinitionError, match=f"{option}='https://example.com' is not callable"):
        task(**{option: "https://example.com"})(lambda: None)


@pytest.mark.parametrize("option", ["on_failure", "on_success", "on_retry"])
def test_a_non_callable_item_in_a_dag_callback_list_is_refused_at_definition(option: str) -> None:
    """@dag(on_x=[ok, 42]) is a DefinitionError naming the bad item."""

    def body() -> None:
        pass

    with pytest.raises(DefinitionError, match=f"{option}=42 is not callable"):
        dag(**{option: [print, 42]})(body)


def test_callback_options_accept_one_callable_or_a_list_or_tuple() -> None:
    """A single callable and a list or tuple of them are all normalised to a tuple."""
    rec = Recorder()

    def body() -> None:
        pass

    assert dag(name="cb_one", on_failure=rec)(body).on_failure == (rec,)
    assert dag(name="cb_many", on_success=[rec, boom])(body).on_success == (rec, boom)
    assert dag(name="cb_tup", on_retry=(boom,))(body).on_retry == (boom,)
    assert dag(name="cb_none")(body).on_failure == ()


# -- backfill summary --------------------------------------------------------------------------


def backfill_dag(broken: set[str], **callbacks: Any) -> pipekit.DAG:
    """A daily DAG whose one task fails on the ISO dates in ``broken``."""

    @task
    def daily_load(ds: dt.date) -> str:
        if ds.isoformat() in broken:
            raise ConnectionError(f"no data for {ds}")
        return ds.isoformat()

    @dag(name="summarised", schedule="@daily", **callbacks)
    def summarised(ds: dt.date) -> None:
        daily_load(ds)

    return summarised


def test_a_backfill_with_failures_sends_one_summary_besides_the_run_failures() -> None:
    """on_failure gets one failure event per failed date, then one 'backfill' summary, last."""
    failures, successes = Recorder(), Recorder()
    d = backfill_dag({"2024-01-02"}, on_failure=failures, on_success=successes)
    report = pipekit.backfill(d, "2024-01-01", "2024-01-03", progress=False, store=MemoryStore())
    assert not report.ok
    assert [(e.kind, e.params.get("ds")) for e in failures.events] == [
        ("failure", "2024-01-02"),
        ("backfill", None),
    ]
    summary = failures.events[-1]
    assert (summary.dag, summary.run_id, summary.task, summary.state) == (
        "summarised",
        None,
        None,
        "failed",
    )
    assert summary.summary == str(report)
    assert "2024-01-02" in summary.text and "1 failed" in summary.text
    assert summary.text.startswith("pipekit: backfill of summarised failed")
    assert [e.kind for e in successes.events] == ["success", "success"]  # per run, no summary


def test_a_backfill_that_succeeds_sends_its_summary_to_on_success() -> None:
    """All dates succeed: on_success gets the runs' events and one 'backfill' success summary."""
    failures, successes = Recorder(), Recorder()
    d = backfill_dag(set(), on_failure=failures, on_success=successes)
    pipekit.backfill(d, "2024-01-01", "2024-01-03", progress=False, store=MemoryStore())
    assert failures.events == []
    assert [e.kind for e in successes.events] == ["success"] * 3 + ["backfill"]
    assert successes.events[-1].state == "success"
    assert "3 succeeded" in (successes.events[-1].summary or "")


def test_a_broken_summary_notifier_is_logged_and_the_report_returned() -> None:
    """A raising summary callback is logged (callback_failed); the report still comes back."""
    d = backfill_dag({"2024-01-01"}, on_failure=boom)
    with capture_logs() as logs:
        report = pipekit.backfill(
            d, "2024-01-01", "2024-01-02", progress=False, store=MemoryStore()
        )
    assert [x.isoformat() for x in report.failed] == ["2024-01-01"]
    kinds = [e["kind"] for e in logs if e["event"] == "callback_failed"]
    assert kinds == ["failure", "backfill"]
    assert logs[-1]["event"] == "backfill_finished"
