"""Run parameters: binding, defaults, conversion with pendulum, and clear errors."""

from __future__ import annotations

import datetime as dt

import pendulum
import pytest

import pipekit
from pipekit import dag, task
from pipekit.params import bind_params, encode_params


@task
def echo(*values: object) -> tuple[object, ...]:
    return values


@dag(tz="America/New_York")
def typed(
    ds: dt.date,
    at: dt.datetime | None = None,
    n: int = 1,
    ratio: float = 0.5,
    full: bool = False,
    label: str = "x",
) -> None:
    echo(ds, at, n, ratio, full, label)


def test_defaults_are_filled_in_so_a_rerun_is_identical() -> None:
    """Run.params holds every parameter, defaults included."""
    run = typed.run(ds="2024-01-05", store=pipekit.stores.MemoryStore())
    assert run.params == {
        "ds": pendulum.Date(2024, 1, 5),
        "at": None,
        "n": 1,
        "ratio": 0.5,
        "full": False,
        "label": "x",
    }


def test_date_strings_become_pendulum_dates() -> None:
    """An ISO string for a date parameter arrives in the task as a pendulum Date."""
    run = typed.run(ds="2024-02-29", store=pipekit.stores.MemoryStore())
    value = run.tasks["echo"].result[0]
    assert isinstance(value, pendulum.Date) and value == dt.date(2024, 2, 29)


def test_datetime_without_zone_is_read_in_the_dag_timezone() -> None:
    """A zone-less datetime string is interpreted in the DAG's tz."""
    bound = bind_params(
        "typed", typed.params, {"ds": "2024-01-05", "at": "2024-07-01T09:00"}, typed.tz
    )
    assert bound["at"] == pendulum.datetime(2024, 7, 1, 9, tz="America/New_York")
    assert bound["at"].utcoffset() == dt.timedelta(hours=-4)


def test_datetime_with_zone_keeps_it_and_naive_objects_get_the_dag_zone() -> None:
    """Explicit offsets win; naive datetime objects are placed in the DAG's tz."""
    bound = bind_params(
        "typed", typed.params, {"ds": dt.date(2024, 1, 5), "at": "2024-01-01T00:00:00+02:00"}, None
    )
    assert bound["at"].utcoffset() == dt.timedelta(hours=2)
    naive = bind_params(
        "typed",
        typed.params,
        {"ds": "2024-01-05", "at": dt.datetime(2024, 1, 1, 12)},
        "Europe/Berlin",
    )
    assert naive["at"].tzinfo is not None and naive["at"].utcoffset() == dt.timedelta(hours=1)


def test_string_forms_of_numbers_and_bools_are_converted() -> None:
    """Values from a command line arrive as strings and are converted by annotation."""
    bound = bind_params(
        "typed", typed.params, {"ds": "2024-01-05", "n": "7", "ratio": "2", "full": "yes"}, None
    )
    assert (bound["n"], bound["ratio"], bound["full"]) == (7, 2.0, True)


def test_missing_required_param_is_named() -> None:
    """Forgetting ds raises ParamError naming it, before anything runs."""
    store = pipekit.stores.MemoryStore()
    with pytest.raises(pipekit.ParamError) as info:
        typed.run(store=store)
    assert info.value.param == "ds"
    assert "'ds'" in str(info.value)
    assert isinstance(info.value, TypeError)
    assert store.list_runs() == []


def test_unknown_param_is_named_with_the_known_ones() -> None:
    """A typo lists the DAG's real parameters."""
    with pytest.raises(pipekit.ParamError, match=r"'dss'.*ds, at, n"):
        typed.run(dss="2024-01-05", store=pipekit.stores.MemoryStore())


@pytest.mark.parametrize(
    ("given", "fragment"),
    [
        ({"ds": "2024-13-01"}, "'2024-13-01' is not an ISO date"),
        ({"ds": "2024-01-05T10:00"}, "has a time"),
        ({"ds": 20240105}, "20240105 is not a date"),
        ({"ds": "2024-01-05", "n": "seven"}, "'seven' is not an int"),
        ({"ds": "2024-01-05", "n": True}, "True is not an int"),
        ({"ds": "2024-01-05", "ratio": "half"}, "'half' is not a float"),
        ({"ds": "2024-01-05", "full": "maybe"}, "'maybe' is not a bool"),
        ({"ds": "2024-01-05", "label": 3}, "3 is not a str"),
        ({"ds": "2024-01-05", "at": "noon"}, "'noon' is not an ISO datetime"),
    ],
)
def test_malformed_values_are_quoted_with_the_fix(given: dict[str, object], fragment: str) -> None:
    """Every conversion failure is a ParamError quoting the value."""
    with pytest.raises(pipekit.ParamError) as info:
        bind_params("typed", typed.params, given, None)
    assert fragment in str(info.value)


def test_encode_params_makes_json_values() -> None:
    """Dates become ISO strings; unrecordable objects are refused by name."""
    encoded = encode_params(
        "d", {"ds": pendulum.Date(2024, 1, 5), "xs": (1, 2), "m": {"k": [dt.date(2024, 1, 1)]}}
    )
    assert encoded == {"ds": "2024-01-05", "xs": [1, 2], "m": {"k": ["2024-01-01"]}}
    with pytest.raises(pipekit.ParamError, match="'obj'"):
        encode_params("d", {"obj": object()})


def test_an_offset_that_is_the_dag_zones_reads_back_as_the_zone() -> None:
    """A recorded "+02:00" is Europe/Berlin again: a day later is midnight, DST and all."""
    bound = bind_params(
        "typed",
        typed.params,
        {"ds": "2024-01-05", "at": "2024-03-31T00:00:00+01:00"},
        "Europe/Berlin",
    )
    assert bound["at"].timezone_name == "Europe/Berlin"
    assert bound["at"].add(days=1).isoformat() == "2024-04-01T00:00:00+02:00"
    other = bind_params(
        "typed",
        typed.params,
        {"ds": "2024-01-05", "at": "2024-03-31T00:00:00+05:00"},
        "Europe/Berlin",
    )
    assert other["at"].utcoffset() == dt.timedelta(hours=5)  # not the zone's: kept as given


@task
def seen_types(ds: object, at: object, since: object) -> tuple[str, str, str]:
    return (type(at).__name__, str(at), type(since).__name__)


@dag(tz="America/New_York")
def defaulted(
    ds: dt.date,
    at: dt.datetime = dt.datetime(2024, 1, 1, 6),
    since: dt.date = "2024-01-01",  # type: ignore[assignment]
) -> None:
    seen_types(ds, at, since)


def test_defaults_are_converted_like_given_values() -> None:
    """A naive datetime default is placed in the DAG's zone and a date string becomes a
    Date, as when passed, so the first run and its re-run see the same values."""
    store = pipekit.stores.MemoryStore()
    run = defaulted.run(ds="2024-03-01", store=store)
    assert run.tasks["seen_types"].result == (
        "DateTime",
        "2024-01-01 06:00:00-05:00",
        "Date",
    )
    assert run.params["at"] == pendulum.datetime(2024, 1, 1, 6, tz="America/New_York")
    again = pipekit.rerun(run.id, store=store, tasks=["seen_types"])
    assert again.tasks["seen_types"].result == run.tasks["seen_types"].result


def test_a_bad_default_is_a_param_error_naming_it() -> None:
    """A default that cannot be converted is reported like a bad given value."""

    @dag
    def bad_default(ds: dt.date = "yesterday") -> None:  # type: ignore[assignment]
        echo(ds)

    with pytest.raises(pipekit.ParamError, match=r"'ds'='yesterday' is not an ISO date"):
        bad_default.run(store=pipekit.stores.MemoryStore())


@pytest.mark.parametrize("value", ["nan", "inf", float("-inf")])
def test_a_float_that_is_not_finite_is_refused_before_anything_runs(value: object) -> None:
    """NaN and infinity are not JSON: refused up front, naming the parameter, in any store."""
    store = pipekit.stores.MemoryStore()
    with pytest.raises(pipekit.ParamError, match=r"parameter 'ratio'=.* cannot be recorded"):
        typed.run(ds="2024-01-05", ratio=value, store=store)
    assert store.list_runs() == []


def test_a_list_holding_nan_is_refused_too() -> None:
    """Inside a list or dict, NaN is refused the same way."""

    @dag
    def listed(values: list[float]) -> None:
        echo(values)

    with pytest.raises(pipekit.ParamError, match="'values'"):
        listed.run(values=[1.0, float("nan")], store=pipekit.stores.MemoryStore())
