"""How the stores write timestamps: ISO-8601 text in UTC, always with microseconds.

``to_text`` keeps the text of the last whole second it formatted and formats only the
microseconds (the run loop stamps thousands of changes a second); whatever order the
timestamps come in, and whatever their zone, the text must be what ``isoformat`` gives.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipekit.errors import StoreError
from pipekit.stores._codec import from_text, to_text

_ZONES = st.sampled_from(
    [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))]
)
_STAMPS = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=_ZONES
)


@given(st.lists(_STAMPS, min_size=1, max_size=20), st.integers(0, 3))
def test_text_is_the_utc_isoformat_with_microseconds_in_any_order(
    stamps: list[datetime], repeat: int
) -> None:
    # Repeats and neighbours in the same second exercise the kept second's text.
    stamps += [s + timedelta(microseconds=repeat) for s in stamps]
    for stamp in stamps:
        text = to_text(stamp, "run")
        assert text == stamp.astimezone(UTC).isoformat(timespec="microseconds")
        assert from_text(text) == stamp


@pytest.mark.parametrize(
    "later",
    [
        timedelta(seconds=1),
        timedelta(minutes=1),
        timedelta(hours=1),
        timedelta(days=1),
        timedelta(days=31),  # the month
        timedelta(days=366),  # the year
    ],
    ids=["second", "minute", "hour", "day", "month", "year"],
)
def test_a_stamp_in_another_second_never_reuses_the_kept_text(later: timedelta) -> None:
    """Two stamps in a row that differ in one field only: each gets its own text."""
    first = datetime(2026, 1, 1, 12, 30, 15, 250_000, tzinfo=UTC)
    assert to_text(first, "run") == "2026-01-01T12:30:15.250000+00:00"
    second = first + later
    assert to_text(second, "run") == second.isoformat(timespec="microseconds")


def test_a_pendulum_datetime_is_written_as_its_utc_instant() -> None:
    import pendulum

    stamp = pendulum.datetime(2026, 7, 1, 12, 30, 0, tz="Europe/Paris")
    assert to_text(stamp, "run") == "2026-07-01T10:30:00.000000+00:00"


def test_a_naive_timestamp_is_refused_with_the_fix() -> None:
    with pytest.raises(StoreError, match=r"it has no time zone; pass an aware datetime"):
        to_text(datetime(2026, 1, 1), "run-1")
