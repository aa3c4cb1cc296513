"""Schedules: presets, cron and durations as data intervals in the DAG's timezone, DST included."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pendulum
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pipekit
from pipekit import DAG, DefinitionError, PipekitError, dag, task
from pipekit.stores import MemoryStore


@task
def echo(value: Any) -> str:
    return str(value)


def scheduled(schedule: Any, *, ds: str = "any", **options: Any) -> DAG:
    """A one-task DAG with ``schedule``; its ``ds`` is untyped, a ``date`` or a ``datetime``."""

    def untyped(ds):
        echo(ds)

    def dated(ds: dt.date) -> None:
        echo(ds)

    def timed(ds: dt.datetime) -> None:
        echo(ds)

    fns: dict[str, Callable[..., None]] = {"any": untyped, "date": dated, "datetime": timed}
    name = options.pop("name", "scheduled")
    return dag(name=name, schedule=schedule, **options)(fns[ds])


def iso(points: list[Any]) -> list[str]:
    """The points as ISO strings (offsets included), in order."""
    return [p.isoformat() for p in points]


def gaps(points: list[Any]) -> list[float]:
    """Elapsed hours between consecutive points."""
    return [(b - a).total_seconds() / 3600 for a, b in itertools.pairwise(points)]


# -- presets and cron strings ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("preset", "start", "end", "expected"),
    [
        (
            "@hourly",
            "2024-01-01T00:00",
            "2024-01-01T03:00",
            [f"2024-01-01T0{h}:00:00+00:00" for h in range(4)],
        ),
        ("@daily", "2024-01-01", "2024-01-03", [f"2024-01-0{d}T00:00:00+00:00" for d in (1, 2, 3)]),
        (
            "@midnight",
            "2024-01-01",
            "2024-01-03",
            [f"2024-01-0{d}T00:00:00+00:00" for d in (1, 2, 3)],
        ),
        (
            "@weekly",
            "2024-01-01",
            "2024-01-31",
            [f"2024-01-{d:02}T00:00:00+00:00" for d in (7, 14, 21, 28)],
        ),
        (
            "@monthly",
            "2024-01-01",
            "2024-04-15",
            [f"2024-{m:02}-01T00:00:00+00:00" for m in (1, 2, 3, 4)],
        ),
        (
            "@yearly",
            "2024-01-01",
            "2026-06-01",
            [f"{y}-01-01T00:00:00+00:00" for y in (2024, 2025, 2026)],
        ),
        (
            "@annually",
            "2024-01-01",
            "2026-06-01",
            [f"{y}-01-01T00:00:00+00:00" for y in (2024, 2025, 2026)],
        ),
    ],
)
def test_every_preset_gives_its_logical_dates(
    preset: str, start: str, end: str, expected: list[str]
) -> None:
    """Each preset yields the points of its cron expression, as in Airflow (weekly: Sundays)."""
    d = scheduled(preset)
    assert d.schedule is not None and d.schedule.text == preset
    assert d.schedule.cron == pipekit.schedule.PRESETS[preset]
    assert iso(d.logical_dates(start, end)) == expected


def test_presets_are_read_case_insensitively() -> None:
    """'@DAILY' is the @daily preset."""
    d = scheduled(" @DAILY ")
    assert d.schedule is not None and d.schedule.cron == "0 0 * * *"


def test_a_cron_string_keeps_local_wall_time_across_a_dst_change() -> None:
    """'30 6 * * 1-5' in Berlin fires at 06:30 local on weekdays, before and after DST starts."""
    d = scheduled("30 6 * * 1-5", tz="Europe/Berlin")
    points = d.logical_dates("2024-03-29", "2024-04-02T23:00")  # Fri .. Tue, DST on Sun 31st
    assert iso(points) == [
        "2024-03-29T06:30:00+01:00",
        "2024-04-01T06:30:00+02:00",
        "2024-04-02T06:30:00+02:00",
    ]


@pytest.mark.parametrize(
    ("cron", "expected"),
    [
        ("*/15 * * * *", ["00:00", "00:15", "00:30", "00:45", "01:00"]),
        ("0 9,17 * * *", []),
        ("5 0 * * *", ["00:05"]),
    ],
)
def test_cron_strings_give_their_points_within_the_range(cron: str, expected: list[str]) -> None:
    """A 5-field cron string is parsed by croniter: minute steps, lists and fixed minutes."""
    d = scheduled(cron)
    points = d.logical_dates("2024-01-01T00:00", "2024-01-01T01:00")
    assert [p.format("HH:mm") for p in points] == expected


def test_an_hourly_dag_in_berlin_has_23_intervals_on_the_spring_dst_day() -> None:
    """2024-03-31 Europe/Berlin: 02:00 does not exist, so 23 hourly intervals of one hour."""
    d = scheduled("@hourly", ds="datetime", tz="Europe/Berlin")
    points = d.logical_dates("2024-03-31T00:00", "2024-03-31T23:59")
    assert len(points) == 23
    assert [p.hour for p in points] == [0, 1, *range(3, 24)]
    assert gaps(points) == [1.0] * 22
    assert points[1].isoformat() == "2024-03-31T01:00:00+01:00"
    assert points[2].isoformat() == "2024-03-31T03:00:00+02:00"


def test_an_hourly_dag_in_berlin_has_25_intervals_on_the_autumn_dst_day() -> None:
    """2024-10-27 Europe/Berlin: 02:00 happens twice (+02:00, then +01:00), so 25 intervals."""
    d = scheduled("@hourly", ds="datetime", tz="Europe/Berlin")
    points = d.logical_dates("2024-10-27T00:00", "2024-10-27T23:59")
    assert len(points) == 25
    assert gaps(points) == [1.0] * 24
    assert iso(points[2:4]) == ["2024-10-27T02:00:00+02:00", "2024-10-27T02:00:00+01:00"]
    assert len(set(iso(points))) == 25


def test_a_daily_dag_in_new_york_stays_on_local_midnight_across_dst() -> None:
    """Daily points stay on local midnight; the DST days' intervals last 23 and 25 hours."""
    d = scheduled("@daily", tz="America/New_York")
    spring = d.logical_dates("2024-03-09", "2024-03-12")
    autumn = d.logical_dates("2024-11-02", "2024-11-04")
    assert all(p.hour == 0 and p.minute == 0 for p in spring + autumn)
    assert iso(spring) == [
        "2024-03-09T00:00:00-05:00",
        "2024-03-10T00:00:00-05:00",
        "2024-03-11T00:00:00-04:00",
        "2024-03-12T00:00:00-04:00",
    ]
    assert gaps(spring) == [24.0, 23.0, 24.0]
    assert gaps(autumn) == [24.0, 25.0]
    assert d.schedule is not None
    begin, end = d.schedule.interval(pendulum.date(2024, 3, 10))
    assert (begin.isoformat(), end.isoformat()) == (
        "2024-03-10T00:00:00-05:00",
        "2024-03-11T00:00:00-04:00",
    )


def test_a_daily_schedule_with_a_date_ds_is_accepted_in_a_dst_timezone() -> None:
    """The 23-hour DST day does not make @daily count as 'more than once a day'."""
    d = scheduled("@daily", ds="date", tz="Europe/Berlin")
    assert d.logical_param == "ds"
    assert d.logical_dates("2024-03-30", "2024-04-01") == [
        pendulum.Date(2024, 3, 30),
        pendulum.Date(2024, 3, 31),
        pendulum.Date(2024, 4, 1),
    ]


def test_without_tz_a_schedule_is_read_in_utc() -> None:
    """tz defaults to UTC: the points are UTC midnights."""
    d = scheduled("@daily")
    assert d.schedule is not None and d.schedule.tz == "UTC"
    assert iso(d.logical_dates("2024-07-01", "2024-07-01")) == ["2024-07-01T00:00:00+00:00"]


# -- duration schedules ----------------------------------------------------------------------


def test_a_timedelta_schedule_is_anchored_at_start() -> None:
    """timedelta(hours=6) from 03:00 gives 03, 09, 15, 21 and nothing before start."""
    d = scheduled(timedelta(hours=6), start="2024-01-01T03:00")
    points = d.logical_dates("2023-12-31", "2024-01-02T02:59")
    assert iso(points) == [
        "2024-01-01T03:00:00+00:00",
        "2024-01-01T09:00:00+00:00",
        "2024-01-01T15:00:00+00:00",
        "2024-01-01T21:00:00+00:00",
    ]
    assert d.schedule is not None and d.schedule.every == timedelta(hours=6)


def test_a_pendulum_duration_schedule_is_anchored_at_start() -> None:
    """pendulum.duration(days=2) from 2024-01-01 gives every other day, as dates for a date ds."""
    d = scheduled(pendulum.duration(days=2), ds="date", start="2024-01-01")
    assert d.logical_dates("2024-01-02", "2024-01-08") == [
        pendulum.Date(2024, 1, 3),
        pendulum.Date(2024, 1, 5),
        pendulum.Date(2024, 1, 7),
    ]


def test_a_sub_daily_duration_steps_fixed_elapsed_time_across_dst() -> None:
    """timedelta(hours=12) in Berlin stays 12 elapsed hours apart over the spring change."""
    d = scheduled(timedelta(hours=12), tz="Europe/Berlin", start="2024-03-30")
    points = d.logical_dates("2024-03-30", "2024-03-31T23:59")
    assert gaps(points) == [12.0, 12.0, 12.0]
    assert iso(points)[-1] == "2024-03-31T13:00:00+02:00"


# -- invalid definitions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "cron",
    ["61 * * * *", "* * *", "0 0 * * * *", "@fortnightly", "every day", "", "0 0 31 2 x"],
)
def test_an_invalid_cron_string_or_preset_is_refused_quoting_it(cron: str) -> None:
    """A bad schedule string is a DefinitionError (a PipekitError) at definition, quoting it."""
    with pytest.raises(DefinitionError) as info:
        scheduled(cron)
    assert isinstance(info.value, PipekitError)
    assert repr(cron) in str(info.value)
    assert "cron" in str(info.value)


@pytest.mark.parametrize("tz", ["Mars/Olympus", "Europe/Berlinn", "not a zone"])
def test_an_invalid_timezone_is_refused_quoting_it(tz: str) -> None:
    """An unknown IANA timezone is a DefinitionError naming it."""
    with pytest.raises(DefinitionError, match="timezone") as info:
        scheduled("@daily", tz=tz)
    assert repr(tz) in str(info.value)


@pytest.mark.parametrize("start", ["not-a-date", "2024-13-45", 12345])
def test_an_invalid_start_is_refused_quoting_it(start: Any) -> None:
    """start= must be a date or datetime; anything else is a DefinitionError quoting it."""
    with pytest.raises(DefinitionError) as info:
        scheduled("@daily", start=start)
    assert f"start={start!r}" in str(info.value)


@pytest.mark.parametrize(
    ("schedule", "words"),
    [
        (42, "not a cron string"),
        (timedelta(0), "positive"),
        (timedelta(hours=-1), "positive"),
    ],
)
def test_a_schedule_of_the_wrong_kind_or_sign_is_refused(schedule: Any, words: str) -> None:
    """A number or a non-positive duration is a DefinitionError quoting the schedule."""
    with pytest.raises(DefinitionError, match=words) as info:
        scheduled(schedule, start="2024-01-01")
    assert repr(schedule) in str(info.value)


def test_a_duration_schedule_needs_a_start() -> None:
    """Without start= a duration has nothing to anchor to: a DefinitionError says to add it."""
    with pytest.raises(DefinitionError, match="start="):
        scheduled(timedelta(hours=1))


@pytest.mark.parametrize(
    "options",
    [{"catchup": "yes"}, {"max_active_runs": 0}, {"max_active_runs": True}],
)
def test_bad_catchup_or_max_active_runs_is_refused(options: dict[str, Any]) -> None:
    """catchup must be a bool and max_active_runs an int >= 1."""
    (option, value), *_ = options.items()
    with pytest.raises(DefinitionError, match=f"{option}={value!r}"):
        scheduled("@daily", **options)


@pytest.mark.parametrize("schedule", ["@hourly", "0 */12 * * *", timedelta(hours=6)])
def test_a_sub_daily_schedule_with_a_date_ds_is_refused(schedule: Any) -> None:
    """A date-annotated ds cannot tell intervals within a day apart: annotate it as a datetime."""
    with pytest.raises(DefinitionError, match="datetime"):
        scheduled(schedule, ds="date", start="2024-01-01")


def test_the_same_sub_daily_schedule_with_a_datetime_ds_is_accepted() -> None:
    """@hourly with a datetime ds defines fine."""
    assert scheduled("@hourly", ds="datetime").logical_param == "ds"


def test_a_schedule_without_a_ds_or_date_parameter_is_refused() -> None:
    """A scheduled DAG needs a parameter for the logical date."""

    def no_date(region: str) -> None:
        echo(region)

    with pytest.raises(DefinitionError, match="'ds'"):
        dag(schedule="@daily")(no_date)


def test_a_schedule_with_two_date_parameters_and_no_ds_is_refused() -> None:
    """Two date parameters are ambiguous without a ds."""

    def two(day: dt.date, until: dt.date) -> None:
        echo(day)
        echo(until)

    with pytest.raises(DefinitionError, match="logical"):
        dag(schedule="@daily")(two)


def test_the_only_date_parameter_receives_the_logical_date() -> None:
    """Without ds, the one date-annotated parameter is the logical one."""

    def by_day(day: dt.date, region: str = "eu") -> None:
        echo(day)
        echo(region)

    d = dag(schedule="@daily")(by_day)
    assert d.logical_param == "day"
    assert d.logical_dates("2024-01-01", "2024-01-02") == [
        pendulum.Date(2024, 1, 1),
        pendulum.Date(2024, 1, 2),
    ]


def test_a_manual_dag_has_no_schedule_and_no_logical_dates() -> None:
    """schedule=None (the default) is manual only; logical_dates() says how to fix it."""
    d = scheduled(None)
    assert d.schedule is None and d.logical_param is None
    with pytest.raises(DefinitionError, match="no schedule"):
        d.logical_dates("2024-01-01", "2024-01-02")


# -- logical_dates() ---------------------------------------------------------------------------


def test_logical_dates_includes_both_bounds() -> None:
    """Points equal to start and to end are both included; points outside are not."""
    d = scheduled("@daily")
    assert iso(d.logical_dates("2024-01-01", "2024-01-03")) == [
        "2024-01-01T00:00:00+00:00",
        "2024-01-02T00:00:00+00:00",
        "2024-01-03T00:00:00+00:00",
    ]
    assert iso(d.logical_dates("2024-01-01T00:01", "2024-01-02T23:59")) == [
        "2024-01-02T00:00:00+00:00"
    ]
    assert d.logical_dates("2024-01-01T00:01", "2024-01-01T23:59") == []


def test_logical_dates_are_pendulum_dates_for_a_date_ds() -> None:
    """A date-annotated ds gets pendulum Dates (not DateTimes)."""
    points = scheduled("@daily", ds="date").logical_dates("2024-01-01", "2024-01-02")
    assert [type(p) for p in points] == [pendulum.Date, pendulum.Date]
    assert points == [pendulum.Date(2024, 1, 1), pendulum.Date(2024, 1, 2)]


@pytest.mark.parametrize("ds", ["any", "datetime"])
def test_logical_dates_are_datetimes_in_the_dag_timezone_otherwise(ds: str) -> None:
    """An untyped or datetime ds gets pendulum DateTimes in the DAG's timezone."""
    points = scheduled("@daily", ds=ds, tz="Asia/Tokyo").logical_dates("2024-01-01", "2024-01-02")
    assert all(isinstance(p, pendulum.DateTime) for p in points)
    assert {p.timezone_name for p in points} == {"Asia/Tokyo"}
    assert iso(points) == ["2024-01-01T00:00:00+09:00", "2024-01-02T00:00:00+09:00"]


def test_logical_dates_accepts_date_objects_and_aware_datetimes() -> None:
    """Bounds may be dates (local midnight) or aware datetimes (converted to the DAG's tz)."""
    d = scheduled("@hourly", tz="Europe/Berlin")
    by_date = d.logical_dates(dt.date(2024, 1, 1), dt.date(2024, 1, 1))
    assert iso(by_date) == ["2024-01-01T00:00:00+01:00"]
    aware = d.logical_dates(
        dt.datetime(2023, 12, 31, 23, 0, tzinfo=dt.UTC),
        dt.datetime(2024, 1, 1, 0, 0, tzinfo=dt.UTC),
    )
    assert iso(aware) == ["2024-01-01T00:00:00+01:00", "2024-01-01T01:00:00+01:00"]


def test_logical_dates_reads_naive_datetimes_in_the_dag_timezone() -> None:
    """A naive datetime bound is local time, like date strings, params and start= are."""
    d = scheduled("@hourly", tz="Europe/Berlin")
    points = d.logical_dates(dt.datetime(2024, 1, 1, 0, 0), dt.datetime(2024, 1, 1, 2, 0))
    assert iso(points) == iso(d.logical_dates("2024-01-01T00:00", "2024-01-01T02:00"))


# -- backfill uses the schedule ----------------------------------------------------------------


def test_backfill_steps_by_the_weekly_schedule() -> None:
    """A @weekly DAG backfilled over January runs once per week (the Sundays), not daily."""
    d = scheduled("@weekly", ds="date", name="weekly_bf")
    report = pipekit.backfill(
        d, "2024-01-01", "2024-01-31", progress=False, store=MemoryStore(), executor="sequential"
    )
    assert [x.isoformat() for x in report.dates] == [
        "2024-01-07",
        "2024-01-14",
        "2024-01-21",
        "2024-01-28",
    ]
    assert report.ok and len(report.succeeded) == 4


@pytest.mark.parametrize(("day", "count"), [("2024-03-30", 24), ("2024-03-31", 23)])
def test_backfill_of_an_hourly_dag_runs_each_hour_of_the_local_day(day: str, count: int) -> None:
    """Hourly with a datetime ds: 24 runs on an ordinary Berlin day, 23 on the DST day."""
    d = scheduled("@hourly", ds="datetime", tz="Europe/Berlin", name="hourly_bf")
    store = MemoryStore()
    report = pipekit.backfill(
        d, f"{day}T00:00", f"{day}T23:59", progress=False, store=store, executor="sequential"
    )
    assert len(report.dates) == count and report.ok
    recorded = sorted(r.params["ds"] for r in store.list_runs(dag="hourly_bf"))
    assert len(set(recorded)) == count
    assert recorded[0] == f"{day}T00:00:00+01:00"


def test_an_explicit_step_still_overrides_the_schedule() -> None:
    """step= wins over the schedule's own dates."""
    d = scheduled("@weekly", ds="date", name="weekly_step")
    report = pipekit.backfill(
        d,
        "2024-01-01",
        "2024-01-03",
        step=timedelta(days=1),
        progress=False,
        dry_run=True,
        store=MemoryStore(),
    )
    assert [x.isoformat() for x in report.dates] == ["2024-01-01", "2024-01-02", "2024-01-03"]


@pytest.mark.parametrize("ds", ["any", "date"])
def test_a_cron_string_that_never_fires_is_refused_at_definition(ds: str) -> None:
    """'0 0 31 2 *' (February 31st) is a DefinitionError quoting it, not a croniter error later."""
    with pytest.raises(DefinitionError) as info:
        scheduled("0 0 31 2 *", ds=ds)
    assert "'0 0 31 2 *'" in str(info.value)


# -- fixed-hour cron strings across DST changes ------------------------------------------------


def test_a_fixed_hour_cron_fires_once_on_the_day_its_time_happens_twice() -> None:
    """'30 2 * * *' in Berlin on 2024-10-27 (02:30 twice): one run, at the first 02:30."""
    d = scheduled("30 2 * * *", ds="datetime", tz="Europe/Berlin")
    assert iso(d.logical_dates("2024-10-26", "2024-10-28T23:00")) == [
        "2024-10-26T02:30:00+02:00",
        "2024-10-27T02:30:00+02:00",
        "2024-10-28T02:30:00+01:00",
    ]


def test_a_fixed_hour_cron_in_the_spring_gap_fires_an_hour_later_that_day() -> None:
    """02:30 does not exist on 2024-03-31 in Berlin: the run comes at 03:30, once."""
    d = scheduled("30 2 * * *", ds="datetime", tz="Europe/Berlin")
    assert iso(d.logical_dates("2024-03-30", "2024-04-01T23:00")) == [
        "2024-03-30T02:30:00+01:00",
        "2024-03-31T03:30:00+02:00",
        "2024-04-01T02:30:00+02:00",
    ]


def test_a_fixed_hour_cron_with_a_date_ds_is_accepted_near_the_autumn_change() -> None:
    """Starting within weeks of a fall-back change used to look 'more than once a day'."""
    d = scheduled("30 2 * * *", ds="date", tz="Europe/Berlin", start="2024-10-01")
    assert d.logical_dates("2024-10-26", "2024-10-28") == [
        pendulum.Date(2024, 10, 26),
        pendulum.Date(2024, 10, 27),
        pendulum.Date(2024, 10, 28),
    ]


def test_a_backfill_over_the_autumn_change_runs_each_day_once() -> None:
    """The backfill over 26-28 October runs three dates, each once."""
    d = scheduled("30 2 * * *", ds="date", tz="Europe/Berlin", name="nightly_dst")
    store = MemoryStore()
    report = pipekit.backfill(
        d, "2024-10-26", "2024-10-28", progress=False, store=store, executor="sequential"
    )
    assert [x.isoformat() for x in report.dates] == ["2024-10-26", "2024-10-27", "2024-10-28"]
    assert sorted(r.params["ds"] for r in store.list_runs()) == [
        "2024-10-26",
        "2024-10-27",
        "2024-10-28",
    ]


def test_a_date_ds_backfill_includes_the_end_day_whatever_the_time_of_its_run() -> None:
    """Start and end are days: a 02:30 DAG from the 1st to the 3rd runs three dates."""
    d = scheduled("30 2 * * *", ds="date", tz="Europe/Berlin", name="late_nightly")
    report = pipekit.backfill(
        d, "2024-01-01", "2024-01-03", progress=False, store=MemoryStore(), executor="sequential"
    )
    assert [x.isoformat() for x in report.dates] == ["2024-01-01", "2024-01-02", "2024-01-03"]
    assert [x.isoformat() for x in d.logical_dates("2024-01-01", "2024-01-03")] == [
        "2024-01-01",
        "2024-01-02",
        "2024-01-03",
    ]


def test_an_hourly_cron_given_as_hours_still_steps_through_elapsed_time() -> None:
    """'0 * * * *' covers every hour: 25 intervals on the autumn day, as @hourly."""
    d = scheduled("0 * * * *", ds="datetime", tz="Europe/Berlin")
    assert len(d.logical_dates("2024-10-27T00:00", "2024-10-27T23:59")) == 25


@settings(max_examples=40, deadline=None)
@given(
    tz=st.sampled_from(["Europe/Berlin", "America/New_York", "Australia/Sydney", "UTC"]),
    hour=st.integers(0, 23),
    minute=st.sampled_from([0, 15, 30, 59]),
)
def test_a_daily_fixed_time_cron_fires_once_on_every_local_day_of_a_year(
    tz: str, hour: int, minute: int
) -> None:
    """Whatever the zone and time (DST gaps and repeats included): one point per local
    day, strictly increasing, at the cron's wall time unless that time does not exist."""
    d = scheduled(f"{minute} {hour} * * *", ds="datetime", tz=tz)
    points = d.logical_dates("2024-01-01", "2024-12-31T23:59")
    assert [p.date() for p in points] == [pendulum.Date(2024, 1, 1).add(days=i) for i in range(366)]
    assert all(a < b for a, b in itertools.pairwise(points))
    off_time = [p for p in points if (p.hour, p.minute) != (hour, minute)]
    assert len(off_time) <= 1  # only the spring day, when the time falls in the gap
