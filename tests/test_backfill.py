"""Backfill: one run per logical date, reports instead of raising, re-runs only what failed."""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import signal
import sys
import threading
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, ClassVar

import pendulum
import pytest
from structlog.testing import capture_logs

import pipekit
from pipekit import PipekitError, backfill, dag, task
from pipekit.executors import ThreadsExecutor
from pipekit.stores import MemoryStore, SQLiteStore
from pipekit.testing import FakeClock
from tests.dags import backfillable as dags
from tests.dags.backfillable import always_flaky, backfillable

TEN = ("2024-01-01", "2024-01-10")
BROKEN = ["2024-01-04", "2024-01-08"]


@pytest.fixture(autouse=True)
def clean_dags() -> Iterator[None]:
    """Reset the fixture DAG module's broken dates, call log and hooks around every test."""
    dags.reset()
    yield
    dags.reset()


@pytest.fixture(params=["memory", "sqlite"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """Each history store in turn: a MemoryStore, then an SQLite file."""
    store: Any = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "h.db")
    yield store
    store.close()


def iso(dates: Any) -> list[str]:
    """Dates (or a dict keyed by dates) as ISO strings, in their order."""
    return [d.isoformat() for d in dates]


def run_calls() -> list[tuple[str, str]]:
    """Every (task, date) call so far, sorted (dates run in threads)."""
    return sorted(dags.CALLS)


# -- the scenario: ten dates, two fail, only their failed tasks run again ----------


def test_failed_dates_are_reported_and_a_second_backfill_redoes_only_their_failed_tasks(
    any_store: Any,
) -> None:
    """A second backfill skips succeeded dates and runs only load/publish of the failed ones."""
    dags.BROKEN.update(BROKEN)
    first = backfill(backfillable, *TEN, store=any_store, progress=False)

    assert not first.ok
    assert iso(first.failed) == BROKEN
    assert len(first.succeeded) == 8 and first.skipped == [] and first.not_run == []
    assert iso(first.runs) == iso(first.dates) == [f"2024-01-{i:02}" for i in range(1, 11)]
    bad = first.runs[pendulum.Date(2024, 1, 4)]
    states = {t: r.state for t, r in bad.tasks.items()}
    assert states == {
        "extract": "success",
        "transform": "success",
        "load": "failed",
        "publish": "upstream_failed",
        "audit": "success",
    }
    assert len(dags.calls_of("extract")) == 10

    dags.reset()  # the warehouse is back
    second = backfill(backfillable, *TEN, store=any_store, progress=False)

    assert second.ok
    assert run_calls() == [
        ("load", "2024-01-04"),
        ("load", "2024-01-08"),
        ("publish", "2024-01-04"),
        ("publish", "2024-01-08"),
    ]
    assert iso(second.succeeded) == BROKEN
    assert len(second.skipped) == 8
    for day in (pendulum.Date(2024, 1, 4), pendulum.Date(2024, 1, 8)):
        assert second.dates[day].action == "rerun"
        redone = second.runs[day]
        assert redone.id == first.runs[day].id  # re-run as pipekit.rerun does: same run
        assert redone.state == "success"
        assert redone.tasks["load"].attempts == 2
        assert redone.tasks["extract"].attempts == 1
        assert redone.tasks["publish"].result == f"{day.isoformat()}={(day.day + 1) * 10}"
    stored = any_store.list_runs(dag="backfillable")
    assert len(stored) == 10 and {r.state for r in stored} == {"success"}


def test_rerun_failed_reruns_only_the_unfinished_tasks_of_failed_dates(
    memory_store: MemoryStore,
) -> None:
    """report.rerun_failed() runs load and publish of the two failed dates and nothing else."""
    dags.BROKEN.update(BROKEN)
    report = backfill(backfillable, *TEN, store=memory_store, progress=False)
    assert iso(report.failed) == BROKEN

    dags.reset()
    again = report.rerun_failed()

    assert isinstance(again, pipekit.BackfillReport)
    assert again.ok and again is not report
    assert iso(again.dates) == iso(again.succeeded) == BROKEN
    assert run_calls() == [
        ("load", "2024-01-04"),
        ("load", "2024-01-08"),
        ("publish", "2024-01-04"),
        ("publish", "2024-01-08"),
    ]
    assert {r.state for r in memory_store.list_runs()} == {"success"}
    assert len(memory_store.list_runs()) == 10


# -- retries -------------------------------------------------------------------------------


def test_retries_are_off_by_default(memory_store: MemoryStore) -> None:
    """A task with retries=3 is attempted once in a backfill, and the failure is reported."""
    clock = FakeClock()
    report = backfill(
        always_flaky, "2024-01-01", "2024-01-01", store=memory_store, clock=clock, progress=False
    )

    assert iso(report.failed) == ["2024-01-01"]
    run = report.runs[pendulum.Date(2024, 1, 1)]
    assert run.tasks["flaky_pull"].attempts == 1
    assert dags.calls_of("flaky_pull") == ["2024-01-01"]
    assert clock.sleeps == []


def test_retries_true_keeps_the_tasks_retry_policies(memory_store: MemoryStore) -> None:
    """With retries=True a task with retries=3 is attempted four times, waiting on the clock."""
    clock = FakeClock()
    report = backfill(
        always_flaky,
        "2024-01-01",
        "2024-01-01",
        retries=True,
        store=memory_store,
        clock=clock,
        progress=False,
    )

    run = report.runs[pendulum.Date(2024, 1, 1)]
    assert run.tasks["flaky_pull"].attempts == 4
    assert len(dags.calls_of("flaky_pull")) == 4
    assert clock.sleeps == [1, 1, 1]
    assert len(memory_store.attempts(run.id, "flaky_pull")) == 4


# -- order and concurrency -----------------------------------------------------------------


def test_reverse_launches_the_newest_date_first(memory_store: MemoryStore) -> None:
    """reverse=True runs dates newest first; the report still lists them in date order."""
    report = backfill(
        backfillable, "2024-01-01", "2024-01-05", reverse=True, store=memory_store, progress=False
    )

    assert dags.calls_of("extract") == [f"2024-01-{i:02}" for i in (5, 4, 3, 2, 1)]
    assert iso(report.runs) == [f"2024-01-{i:02}" for i in (1, 2, 3, 4, 5)]
    assert report.ok


def test_dates_run_in_order_oldest_first_by_default(memory_store: MemoryStore) -> None:
    """Without reverse, dates are launched oldest first, one at a time."""
    backfill(backfillable, "2024-01-01", "2024-01-05", store=memory_store, progress=False)
    assert dags.calls_of("extract") == [f"2024-01-{i:02}" for i in (1, 2, 3, 4, 5)]


def test_max_active_runs_lets_dates_overlap(any_store: Any) -> None:
    """With max_active_runs=3, three dates are inside their extract task at the same time."""
    barrier = threading.Barrier(3, timeout=2)

    def meet(day: str) -> None:
        barrier.wait()

    dags.HOOKS["extract"] = meet
    report = backfill(
        backfillable, "2024-01-01", "2024-01-03", max_active_runs=3, store=any_store, progress=False
    )

    assert report.ok, str(report)
    assert not barrier.broken
    assert len(report.succeeded) == 3


def test_max_active_runs_one_never_interleaves_dates(memory_store: MemoryStore) -> None:
    """With the default max_active_runs=1, every task of a date runs before the next date starts."""
    report = backfill(backfillable, "2024-01-01", "2024-01-04", store=memory_store, progress=False)

    assert report.ok
    days = [day for _, day in dags.CALLS]
    assert days == sorted(days)
    assert len(days) == 5 * 4


# -- stopping --------------------------------------------------------------------------------


def test_max_failures_stops_launching_and_lists_the_dates_not_run(
    memory_store: MemoryStore,
) -> None:
    """After max_failures=1 failed date no new date starts; the rest are reported not_run."""
    dags.BROKEN.add("2024-01-02")
    report = backfill(
        backfillable, "2024-01-01", "2024-01-05", max_failures=1, store=memory_store, progress=False
    )

    assert iso(report.succeeded) == ["2024-01-01"]
    assert iso(report.failed) == ["2024-01-02"]
    assert iso(report.not_run) == ["2024-01-03", "2024-01-04", "2024-01-05"]
    assert not report.ok
    assert iso(report.runs) == ["2024-01-01", "2024-01-02"]
    assert dags.calls_of("extract") == ["2024-01-01", "2024-01-02"]
    assert len(memory_store.list_runs()) == 2
    assert "not run: 2024-01-03, 2024-01-04, 2024-01-05" in str(report)


def test_rerun_failed_also_starts_the_dates_not_run(memory_store: MemoryStore) -> None:
    """After max_failures stopped a backfill, rerun_failed() finishes every remaining date."""
    dags.BROKEN.add("2024-01-02")
    report = backfill(
        backfillable, "2024-01-01", "2024-01-04", max_failures=1, store=memory_store, progress=False
    )
    dags.reset()

    again = report.rerun_failed()

    assert again.ok
    assert iso(again.succeeded) == ["2024-01-02", "2024-01-03", "2024-01-04"]
    assert dags.calls_of("extract") == ["2024-01-03", "2024-01-04"]
    assert dags.calls_of("load") == ["2024-01-02", "2024-01-03", "2024-01-04"]


def test_ctrl_c_stops_launching_lets_the_running_date_end_and_returns_a_report(
    memory_store: MemoryStore,
) -> None:
    """SIGINT during date 2 of 5: date 2 completes, dates 3-5 are not_run, nothing escapes."""

    def interrupt(day: str) -> None:
        if day == "2024-01-02":
            os.kill(os.getpid(), signal.SIGINT)

    dags.HOOKS["load"] = interrupt
    try:
        with capture_logs() as logs:
            report = backfill(
                backfillable, "2024-01-01", "2024-01-05", store=memory_store, progress=False
            )
    except KeyboardInterrupt:  # without this, a regression would end the whole test session
        pytest.fail("KeyboardInterrupt escaped pipekit.backfill")

    assert iso(report.succeeded) == ["2024-01-01", "2024-01-02"]
    assert iso(report.not_run) == ["2024-01-03", "2024-01-04", "2024-01-05"]
    assert report.failed == []
    assert report.runs[pendulum.Date(2024, 1, 2)].tasks["publish"].state == "success"
    assert dags.calls_of("extract") == ["2024-01-01", "2024-01-02"]
    stored = memory_store.list_runs()
    assert len(stored) == 2 and {r.state for r in stored} == {"success"}
    assert "backfill_interrupted" in [e["event"] for e in logs]


class _InterruptedPause(FakeClock):
    """A clock whose first sleep receives a Ctrl-C, as a real pause would."""

    def sleep(self, seconds: float) -> None:
        first = not self.sleeps
        super().sleep(seconds)
        if first:
            os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_during_the_delay_launches_no_more_dates(memory_store: MemoryStore) -> None:
    """A Ctrl-C that lands in the pause between dates stops before the next date starts."""
    try:
        report = backfill(
            backfillable,
            "2024-01-01",
            "2024-01-04",
            delay=5,
            clock=_InterruptedPause(),
            store=memory_store,
            progress=False,
        )
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped pipekit.backfill")
    assert iso(report.succeeded) == ["2024-01-01"]
    assert iso(report.not_run) == ["2024-01-02", "2024-01-03", "2024-01-04"]
    assert dags.calls_of("extract") == ["2024-01-01"]


def test_a_date_whose_history_could_not_be_recorded_shows_why_in_the_summary() -> None:
    """A date whose tasks succeeded but whose history failed is listed with that error."""
    from pipekit.errors import StoreError
    from pipekit.stores.base import RunEnded, RunStarted

    class FullDisk(MemoryStore):
        doomed: ClassVar[set[str]] = set()

        def record(self, changes: Any) -> None:
            for c in changes:
                if isinstance(c, RunStarted) and c.params.get("ds") == "2024-01-02":
                    self.doomed.add(c.run_id)
                if isinstance(c, RunEnded) and c.run_id in self.doomed:
                    raise StoreError("database or disk is full")
            super().record(changes)

    report = backfill(backfillable, "2024-01-01", "2024-01-03", store=FullDisk(), progress=False)
    assert iso(report.failed) == ["2024-01-02"]
    assert re.search(
        r"^  2024-01-02: history not recorded: StoreError: database or disk is full  \[run ",
        str(report),
        re.MULTILINE,
    ), str(report)


def test_delay_sleeps_on_the_injected_clock_between_launches(memory_store: MemoryStore) -> None:
    """delay=5 over four dates sleeps 5 s three times on the clock: between launches only."""
    clock = FakeClock()
    report = backfill(
        backfillable,
        "2024-01-01",
        "2024-01-04",
        delay=5,
        clock=clock,
        store=memory_store,
        progress=False,
    )
    assert report.ok
    assert clock.sleeps == [5, 5, 5]

    clock = FakeClock()
    backfill(
        backfillable,
        "2024-01-01",
        "2024-01-06",
        delay=5,
        clock=clock,
        store=memory_store,
        progress=False,
    )
    assert clock.sleeps == [5]  # two new dates launched; the four done ones were skipped


# -- dry run and reprocess -------------------------------------------------------------------


def test_dry_run_on_an_empty_history_records_nothing(memory_store: MemoryStore) -> None:
    """dry_run=True runs no task, records no run, and plans a run for every date."""
    report = backfill(
        backfillable, "2024-01-01", "2024-01-03", dry_run=True, store=memory_store, progress=False
    )

    assert memory_store.list_runs() == []
    assert dags.CALLS == []
    assert report.dry_run
    assert {d.isoformat(): o.action for d, o in report.dates.items()} == {
        "2024-01-01": "run",
        "2024-01-02": "run",
        "2024-01-03": "run",
    }
    assert report.runs == {}


def test_dry_run_lists_what_would_happen_to_each_date(memory_store: MemoryStore) -> None:
    """After a partial backfill, a dry run plans skip/rerun/run per date and changes nothing."""
    dags.BROKEN.add("2024-01-02")
    backfill(backfillable, "2024-01-01", "2024-01-03", store=memory_store, progress=False)
    before = [(r.id, r.state) for r in memory_store.list_runs()]
    calls = list(dags.CALLS)

    report = backfill(
        backfillable, "2024-01-01", "2024-01-05", dry_run=True, store=memory_store, progress=False
    )

    assert [(r.id, r.state) for r in memory_store.list_runs()] == before
    assert calls == dags.CALLS
    assert {d.isoformat(): o.action for d, o in report.dates.items()} == {
        "2024-01-01": "skip",
        "2024-01-02": "rerun",
        "2024-01-03": "skip",
        "2024-01-04": "run",
        "2024-01-05": "run",
    }
    text = str(report)
    assert "dry run" in text
    for line in (
        "2024-01-01: skip",
        "2024-01-02: rerun",
        "2024-01-03: skip",
        "2024-01-04: run",
        "2024-01-05: run",
    ):
        assert line in text
    with pytest.raises(PipekitError, match="dry run"):
        report.rerun_failed()


def test_reprocess_all_runs_every_date_afresh(memory_store: MemoryStore) -> None:
    """reprocess="all" starts a new run of every task for every date, failed or succeeded."""
    dags.BROKEN.add("2024-01-02")
    first = backfill(backfillable, "2024-01-01", "2024-01-03", store=memory_store, progress=False)
    dags.reset()

    again = backfill(
        backfillable,
        "2024-01-01",
        "2024-01-03",
        reprocess="all",
        store=memory_store,
        progress=False,
    )

    assert again.ok and again.skipped == []
    assert {o.action for o in again.dates.values()} == {"run"}
    assert len(dags.CALLS) == 5 * 3  # every task of every date
    assert set(again.runs[d].id for d in again.runs).isdisjoint(r.id for r in first.runs.values())
    assert len(memory_store.list_runs()) == 6


def test_reprocess_none_runs_only_dates_without_a_run(memory_store: MemoryStore) -> None:
    """reprocess="none" skips every date with a run, even a failed one, and runs the rest."""
    dags.BROKEN.add("2024-01-02")
    backfill(backfillable, "2024-01-01", "2024-01-03", store=memory_store, progress=False)
    dags.reset()

    report = backfill(
        backfillable,
        "2024-01-01",
        "2024-01-05",
        reprocess="none",
        store=memory_store,
        progress=False,
    )

    assert iso(report.skipped) == ["2024-01-01", "2024-01-02", "2024-01-03"]
    assert iso(report.succeeded) == ["2024-01-04", "2024-01-05"]
    assert sorted({day for _, day in dags.CALLS}) == ["2024-01-04", "2024-01-05"]
    still_failed = memory_store.list_runs(dag="backfillable", state="failed")
    assert [r.params["ds"] for r in still_failed] == ["2024-01-02"]


def test_reprocess_failed_skips_succeeded_dates_and_runs_new_ones(
    memory_store: MemoryStore,
) -> None:
    """The default reprocess="failed" skips succeeded dates and runs dates with no run yet."""
    backfill(backfillable, "2024-01-02", "2024-01-03", store=memory_store, progress=False)
    dags.reset()

    report = backfill(backfillable, "2024-01-01", "2024-01-04", store=memory_store, progress=False)

    assert iso(report.skipped) == ["2024-01-02", "2024-01-03"]
    assert iso(report.succeeded) == ["2024-01-01", "2024-01-04"]
    assert dags.calls_of("extract") == ["2024-01-01", "2024-01-04"]
    assert report.ok


def test_store_none_uses_the_configured_store(memory_store: MemoryStore) -> None:
    """Without store=, the backfill reads and records the history set with pipekit.configure."""
    pipekit.configure(store=memory_store)
    report = backfill(backfillable, "2024-01-01", "2024-01-02", progress=False)
    assert report.ok
    assert len(memory_store.list_runs(dag="backfillable")) == 2


# -- parameters ------------------------------------------------------------------------------


@task
def seen(value: object) -> object:
    return value


@dag(name="bf_ds_date")
def ds_date(ds: dt.date) -> None:
    seen(ds)


@dag(name="bf_ds_plain")
def ds_plain(ds) -> None:  # unannotated on purpose: it gets a DateTime
    seen(ds)


@dag(name="bf_only_date")
def only_date(n: int, day: dt.date) -> None:
    seen(day)


@dag(name="bf_only_datetime")
def only_datetime(when: dt.datetime, label: str = "x") -> None:
    seen(when)


@dag(name="bf_two_dates")
def two_dates(start_day: dt.date, end_day: dt.date) -> None:
    seen(start_day)
    seen(end_day)


@dag(name="bf_no_date")
def no_date(n: int) -> None:
    seen(n)


@pytest.mark.parametrize(
    ("the_dag", "name", "kind", "first", "extra"),
    [
        (ds_date, "ds", pendulum.Date, "2024-01-01", {}),
        (ds_plain, "ds", pendulum.DateTime, "2024-01-01T00:00:00+00:00", {}),
        (only_date, "day", pendulum.Date, "2024-01-01", {"n": 3}),
        (only_datetime, "when", pendulum.DateTime, "2024-01-01T00:00:00+00:00", {}),
    ],
    ids=["ds-date", "ds-unannotated", "only-date-param", "only-datetime-param"],
)
def test_the_logical_date_goes_to_ds_or_the_only_date_param(
    memory_store: MemoryStore,
    the_dag: pipekit.DAG,
    name: str,
    kind: type,
    first: str,
    extra: dict[str, Any],
) -> None:
    """ds (else the only date param) gets a pendulum Date if annotated as a date, else DateTime."""
    report = backfill(
        the_dag, "2024-01-01", "2024-01-02", store=memory_store, progress=False, **extra
    )

    assert report.param == name
    values = [run.tasks["seen"].result for run in report.runs.values()]
    assert [type(v) for v in values] == [kind, kind]
    assert values[0].isoformat() == first
    first_run = next(iter(report.runs.values()))
    assert memory_store.get_run(first_run.id).params[name] == first


def test_explicit_param_receives_the_dates(memory_store: MemoryStore) -> None:
    """param="end_day" puts each date in end_day; start_day comes from **params, fixed."""
    report = backfill(
        two_dates,
        "2024-01-01",
        "2024-01-03",
        param="end_day",
        start_day="2023-12-31",
        store=memory_store,
        progress=False,
    )

    assert report.ok and report.param == "end_day"
    assert [r.tasks["seen__1"].result.isoformat() for r in report.runs.values()] == [
        "2024-01-01",
        "2024-01-02",
        "2024-01-03",
    ]
    assert {r.tasks["seen"].result.isoformat() for r in report.runs.values()} == {"2023-12-31"}


@pytest.mark.parametrize(
    ("the_dag", "names"),
    [(two_dates, ["start_day", "end_day"]), (no_date, ["none is annotated"])],
    ids=["two-date-params", "no-date-param"],
)
def test_an_unclear_logical_date_param_is_an_error_that_says_how_to_choose(
    memory_store: MemoryStore, the_dag: pipekit.DAG, names: list[str]
) -> None:
    """Without ds and without exactly one date param, the error says to pass param='<name>'."""
    with pytest.raises(PipekitError, match=r"pass param='<name>'") as info:
        backfill(the_dag, "2024-01-01", "2024-01-02", store=memory_store, progress=False)
    for name in names:
        assert name in str(info.value)
    assert memory_store.list_runs() == []


def test_other_params_are_passed_to_every_date_and_recorded(memory_store: MemoryStore) -> None:
    """region="us" reaches every date's tasks and is recorded with every run."""
    report = backfill(
        backfillable, "2024-01-01", "2024-01-03", region="us", store=memory_store, progress=False
    )

    assert [r.tasks["audit"].result for r in report.runs.values()] == [
        "us:2024-01-01",
        "us:2024-01-02",
        "us:2024-01-03",
    ]
    assert [r.params for r in reversed(memory_store.list_runs())] == [
        {"ds": "2024-01-01", "region": "us"},
        {"ds": "2024-01-02", "region": "us"},
        {"ds": "2024-01-03", "region": "us"},
    ]


def test_runs_with_other_params_do_not_count_as_done(memory_store: MemoryStore) -> None:
    """A date that succeeded for region="us" still runs for region="eu"; for "us" it is skipped."""
    backfill(
        backfillable, "2024-01-01", "2024-01-02", region="us", store=memory_store, progress=False
    )

    eu = backfill(backfillable, "2024-01-01", "2024-01-02", store=memory_store, progress=False)
    us = backfill(
        backfillable, "2024-01-01", "2024-01-02", region="us", store=memory_store, progress=False
    )

    assert len(eu.succeeded) == 2 and eu.skipped == []
    assert len(us.skipped) == 2 and us.succeeded == []


@pytest.mark.parametrize(
    "step", [dt.timedelta(days=7), pendulum.duration(weeks=1)], ids=["timedelta", "duration"]
)
def test_step_sets_the_interval_between_dates(memory_store: MemoryStore, step: Any) -> None:
    """step=7 days (timedelta or pendulum Duration) runs every seventh date from start to end."""
    report = backfill(
        backfillable, "2024-01-01", "2024-01-31", step=step, store=memory_store, progress=False
    )

    assert iso(report.dates) == [
        "2024-01-01",
        "2024-01-08",
        "2024-01-15",
        "2024-01-22",
        "2024-01-29",
    ]
    assert sorted(dags.calls_of("extract")) == iso(report.dates)


def test_start_and_end_are_both_included_and_may_be_equal(memory_store: MemoryStore) -> None:
    """A one-date range runs that date; date objects are accepted like ISO strings."""
    report = backfill(
        backfillable, dt.date(2024, 1, 5), "2024-01-05", store=memory_store, progress=False
    )
    assert iso(report.succeeded) == ["2024-01-05"]


@task
def stamp(when: dt.datetime) -> str:
    return when.isoformat()


@dag(name="bf_paris_daily", tz="Europe/Paris")
def paris_daily(ds: dt.datetime) -> None:
    stamp(ds)


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (
            "2024-03-30",
            "2024-04-01",
            ["2024-03-30T00:00:00+01:00", "2024-03-31T00:00:00+01:00", "2024-04-01T00:00:00+02:00"],
        ),
        (
            "2024-10-26",
            "2024-10-28",
            ["2024-10-26T00:00:00+02:00", "2024-10-27T00:00:00+02:00", "2024-10-28T00:00:00+01:00"],
        ),
    ],
    ids=["spring-forward", "fall-back"],
)
def test_daily_steps_stay_on_local_midnight_across_dst(
    memory_store: MemoryStore, start: str, end: str, expected: list[str]
) -> None:
    """In a DAG with tz=Europe/Paris every local day from start to end gets its midnight run."""
    report = backfill(paris_daily, start, end, store=memory_store, progress=False)
    assert [r.tasks["stamp"].result for r in report.runs.values()] == expected


@task
def keep(ds: dt.date) -> str:
    return ds.isoformat()


@task
def retired(ds: dt.date) -> None:
    raise ValueError("retired broke")


def test_a_date_whose_rerun_cannot_start_is_reported_failed_and_the_rest_go_on(
    memory_store: MemoryStore,
) -> None:
    """When a failed task was removed from the DAG, that date fails with the reason; others run."""

    @dag(name="bf_evolving")
    def before(ds: dt.date) -> None:
        keep(ds)
        retired(ds)

    backfill(before, "2024-01-01", "2024-01-01", store=memory_store, progress=False)

    @dag(name="bf_evolving")
    def after(ds: dt.date) -> None:
        keep(ds)

    with capture_logs() as logs:
        report = backfill(after, "2024-01-01", "2024-01-02", store=memory_store, progress=False)

    assert iso(report.failed) == ["2024-01-01"]
    assert iso(report.succeeded) == ["2024-01-02"]
    assert "2024-01-01: PipekitError: rerun of" in str(report)
    assert "task 'retired' did not succeed" in str(report)
    [event] = [e for e in logs if e["event"] == "backfill_date_failed"]
    assert (event["dag"], event["logical_date"]) == ("bf_evolving", "2024-01-01")
    assert "retired" in event["error"]


# -- bad arguments -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "options", "message"),
    [
        ("2024-01-05", "2024-01-01", {}, "is after end"),
        ("2024-01-01", "not a date", {}, "end='not a date' is not a date"),
        ("2024-02-30", "2024-03-01", {}, "start='2024-02-30' is not a date"),
        ("2024-01-01", "2024-01-02", {"reprocess": "some"}, "reprocess='some' is not one of"),
        ("2024-01-01", "2024-01-02", {"param": "day"}, "param='day' is not a parameter"),
        ("2024-01-01", "2024-01-02", {"regoin": "us"}, "no parameter 'regoin'"),
        ("2024-01-01", "2024-01-02", {"ds": "2024-01-01"}, "set by the backfill"),
        ("2024-01-01", "2024-01-02", {"step": 1}, "is not a duration"),
        ("2024-01-01", "2024-01-02", {"step": dt.timedelta(days=-1)}, "must be positive"),
        ("2024-01-01", "2024-01-02", {"max_active_runs": 0}, "max_active_runs=0"),
        ("2024-01-01", "2024-01-02", {"max_failures": 0}, "max_failures=0"),
        ("2024-01-01", "2024-01-02", {"delay": -1}, "delay=-1"),
        (
            "2024-01-01",
            "2024-01-02",
            {"executor": ThreadsExecutor(), "max_active_runs": 2},
            r"serves one run at a time.*pass a factory.*by name",
        ),
        (
            "2024-01-01",
            "2024-03-01",
            {"step": pendulum.duration(months=-1)},
            r"must be positive.*reverse=True",
        ),
        ("2024-01-01", "2024-01-02", {"executor": "thread"}, "executor='thread' is not known"),
        ("2024-01-01", "2024-01-02", {"executor": ThreadsExecutor, "max_workers": 2}, "factory"),
    ],
    ids=[
        "start-after-end",
        "unparsable-end",
        "impossible-start",
        "unknown-reprocess",
        "unknown-param",
        "unknown-run-param",
        "logical-param-given",
        "step-not-duration",
        "negative-step",
        "zero-active-runs",
        "zero-max-failures",
        "negative-delay",
        "shared-executor-object",
        "negative-months",
        "unknown-executor",
        "max-workers-with-factory",
    ],
)
def test_bad_arguments_raise_before_anything_runs(
    memory_store: MemoryStore, start: str, end: str, options: dict[str, Any], message: str
) -> None:
    """Each bad argument raises PipekitError naming it, with no task called and no run recorded."""
    with pytest.raises(PipekitError, match=message):
        backfill(backfillable, start, end, store=memory_store, progress=False, **options)
    assert memory_store.list_runs() == []
    assert dags.CALLS == []


def test_a_sub_day_step_for_a_date_param_says_to_use_whole_days(
    memory_store: MemoryStore,
) -> None:
    """step=12 hours with a date-typed ds raises an error that asks for a step of whole days."""
    with pytest.raises(PipekitError, match="whole days"):
        backfill(
            backfillable,
            "2024-01-01",
            "2024-01-02",
            step=dt.timedelta(hours=12),
            store=memory_store,
            progress=False,
        )


# -- the report --------------------------------------------------------------------------------


def test_summary_names_failed_dates_their_task_and_error_and_dates_not_run(
    memory_store: MemoryStore,
) -> None:
    """str(report) counts dates, names each failed date's task, error and run, and the not run."""
    dags.BROKEN.update(["2024-01-02", "2024-01-03"])
    report = backfill(
        backfillable, "2024-01-01", "2024-01-05", max_failures=2, store=memory_store, progress=False
    )
    text = str(report)

    assert text.splitlines()[0] == (
        "backfill of backfillable: 5 dates, 1 succeeded, 2 failed, 0 skipped, 2 not run"
    )
    for day in ("2024-01-02", "2024-01-03"):
        run = report.runs[pendulum.Date.fromisoformat(day)]
        assert f"{day}: load failed: ConnectionError: warehouse refused {day}" in text
        assert run.id in text
    assert "not run: 2024-01-04, 2024-01-05" in text
    assert "rerun_failed()" in text
    assert repr(report).startswith("<BackfillReport backfill of backfillable: 5 dates")


def test_a_clean_summary_has_only_the_counts(memory_store: MemoryStore) -> None:
    """A backfill with no failure prints one line of counts and no failure section."""
    report = backfill(backfillable, "2024-01-01", "2024-01-02", store=memory_store, progress=False)
    assert str(report) == (
        "backfill of backfillable: 2 dates, 2 succeeded, 0 failed, 0 skipped, 0 not run"
    )


class _Table(HTMLParser):
    """Collects the cells (text, style, title) of each row of an HTML table."""

    def __init__(self) -> None:
        super().__init__()
        self.classes: list[str | None] = []
        self.rows: list[list[dict[str, str]]] = []
        self._cell: dict[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "table":
            self.classes.append(found.get("class"))
        elif tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th") and self.rows:
            self._cell = {
                "text": "",
                "style": found.get("style") or "",
                "title": found.get("title") or "",
            }
            self.rows[-1].append(self._cell)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th"):
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell["text"] += data


def test_html_report_is_a_table_of_dates_by_tasks_coloured_by_state(
    memory_store: MemoryStore,
) -> None:
    """_repr_html_ is a pipekit-backfill table: a row per date, a column per task, state colours."""
    dags.BROKEN.add("2024-01-02")
    report = backfill(backfillable, "2024-01-01", "2024-01-03", store=memory_store, progress=False)
    table = _Table()
    table.feed(report._repr_html_())

    assert table.classes == ["pipekit-backfill"]
    header = [c["text"] for c in table.rows[0]]
    assert header[:2] == ["ds", "run"]
    tasks = header[2:]
    assert sorted(tasks) == ["audit", "extract", "load", "publish", "transform"]
    body = {row[0]["text"]: row for row in table.rows[1:]}
    assert list(body) == ["2024-01-01", "2024-01-02", "2024-01-03"]

    def cell(day: str, name: str) -> dict[str, str]:
        return body[day][2 + tasks.index(name)]

    assert body["2024-01-02"][1]["text"] == "failed"
    assert body["2024-01-01"][1]["text"] == "success"
    assert cell("2024-01-02", "load")["text"] == "failed"
    assert "#ffcdd2" in cell("2024-01-02", "load")["style"]
    assert cell("2024-01-02", "load")["title"] == "ConnectionError: warehouse refused 2024-01-02"
    assert cell("2024-01-02", "publish")["text"] == "upstream_failed"
    assert "#ffe0b2" in cell("2024-01-02", "publish")["style"]
    for name in tasks:
        assert cell("2024-01-01", name)["text"] == "success"
        assert "#c8e6c9" in cell("2024-01-01", name)["style"]


@task
def shouty() -> None:
    raise ValueError('<b>"bold"</b> & more')


@dag(name="bf_shouty")
def shouty_dag(ds: dt.date) -> None:
    shouty()


def test_html_report_escapes_task_errors(memory_store: MemoryStore) -> None:
    """A task error with markup is escaped in the HTML table, not injected into it."""
    report = backfill(shouty_dag, "2024-01-01", "2024-01-01", store=memory_store, progress=False)
    page = report._repr_html_()

    assert "<b>" not in page.replace("<b>backfill", "")  # only the summary is bold
    table = _Table()
    table.feed(page)
    assert table.rows[1][2]["title"] == 'ValueError: <b>"bold"</b> & more'


# -- logging and progress --------------------------------------------------------------------


def test_each_task_failure_and_the_summary_are_logged(memory_store: MemoryStore) -> None:
    """backfill_task_failed names dag, logical date, task and error; backfill_finished ends it."""
    dags.BROKEN.update(BROKEN)
    with capture_logs() as logs:
        backfill(backfillable, *TEN, store=memory_store, progress=False)

    failed = [e for e in logs if e["event"] == "backfill_task_failed"]
    assert sorted(
        (e["dag"], e["logical_date"], e["task"], e["error"], e["log_level"]) for e in failed
    ) == [
        ("backfillable", day, "load", f"ConnectionError: warehouse refused {day}", "error")
        for day in BROKEN
    ]
    finished = [e for e in logs if e["event"] == "backfill_finished"]
    assert len(finished) == 1
    assert logs[-1] is finished[0]
    assert finished[0]["dag"] == "backfillable"
    assert finished[0]["failed"] == BROKEN
    assert (finished[0]["dates"], finished[0]["succeeded"]) == (10, 8)
    assert finished[0]["not_run"] == []


def test_progress_true_draws_a_bar_over_dates_on_stderr(
    memory_store: MemoryStore, capsys: pytest.CaptureFixture[str]
) -> None:
    """progress=True writes a tqdm bar named after the DAG that counts dates to stderr."""
    backfill(backfillable, "2024-01-01", "2024-01-03", store=memory_store, progress=True)
    err = capsys.readouterr().err
    assert "backfillable" in err
    assert "3/3" in err


def test_progress_default_is_off_when_stderr_is_not_a_terminal(
    memory_store: MemoryStore,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """progress=None draws nothing when stderr is not a TTY and no notebook kernel is loaded."""
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    assert not sys.stderr.isatty()
    report = backfill(backfillable, "2024-01-01", "2024-01-03", store=memory_store)
    assert report.ok
    assert capsys.readouterr().err == ""


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_progress_default_is_on_in_a_terminal(
    memory_store: MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """progress=None draws the bar when stderr is a TTY."""
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    backfill(backfillable, "2024-01-01", "2024-01-03", store=memory_store)
    assert "3/3" in terminal.getvalue()


def test_a_date_run_by_hand_with_another_offset_counts_as_done(memory_store: MemoryStore) -> None:
    """Backfill matches recorded runs by instant, whatever offset they were given with."""
    calls: list[str] = []

    @task
    def note(ts: object) -> None:
        calls.append(str(ts))

    @dag(tz="America/New_York")
    def ny_hourly(ts: dt.datetime) -> None:
        note(ts)

    ny_hourly.run(ts="2024-01-03T05:00:00Z", store=memory_store, executor="sequential")
    report = backfill(ny_hourly, "2024-01-03", "2024-01-04", store=memory_store, progress=False)
    assert report.skipped == [pendulum.datetime(2024, 1, 3, tz="America/New_York")]
    assert len(calls) == 2
