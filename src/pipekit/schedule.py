"""Schedules: when a DAG's runs are due, as data intervals in the DAG's timezone.

As in Airflow, each run covers a data interval: its logical date (the ``ds``
parameter) is the interval's start, and the run is due once the interval has ended.
A daily DAG's run for 2024-01-05 is due at 2024-01-06 00:00 in the DAG's timezone.

Schedules are 5-field cron strings (parsed by croniter), presets (``@hourly``,
``@daily``, ``@weekly``, ``@monthly``, ``@yearly``) or fixed durations (a timedelta or
pendulum Duration, anchored at the DAG's ``start``). Times are computed by pendulum in
the DAG's timezone, so they are right across daylight-saving changes: an hourly DAG in
Europe/Berlin has 23 intervals on 2024-03-31 and 25 on 2024-10-27, and a cron string with
fixed hours keeps its local time, once a day (02:30 on the day 02:30 happens twice; 03:30
on the day it does not exist).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pipekit.errors import DefinitionError

__all__ = ["PRESETS", "Schedule", "parse_schedule"]

PRESETS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
"""Preset names and the cron expressions they stand for."""


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule in a timezone.

    Attributes:
        cron: the 5-field cron expression (presets expanded), or None.
        every: the fixed interval of a duration schedule, or None.
        tz: the IANA timezone the schedule is read in.
        anchor: where a duration schedule's intervals start (the DAG's ``start``).
        text: the schedule as the user wrote it (for messages and listings).
    """

    cron: str | None
    every: timedelta | None
    tz: str
    anchor: datetime | None
    text: str

    def localize(self, moment: Any) -> Any:
        """``moment`` (a date, datetime or ISO string; naive: local) as a DateTime in tz."""
        import pendulum

        if isinstance(moment, datetime):
            if moment.tzinfo is None:  # a naive datetime is read in the schedule's timezone
                return pendulum.instance(moment, tz=self.tz)
            return pendulum.instance(moment).in_timezone(self.tz)
        if isinstance(moment, date):
            return pendulum.datetime(moment.year, moment.month, moment.day, tz=self.tz)
        if isinstance(moment, str):
            parsed = pendulum.parse(moment, tz=self.tz, exact=True)
            return self.localize(parsed)
        raise TypeError(f"not a date or datetime: {moment!r}")

    @property
    def _wall_clock(self) -> bool:
        """Whether cron points are local wall-clock times (the hour field is fixed).

        A cron string with fixed hours ("30 2 * * *") fires once at that local time,
        also on the day clocks go back and 02:30 happens twice (the first one counts)
        and on the day they go forward and 02:30 does not exist (03:30 then). One that
        covers every hour ("0 * * * *") steps through elapsed time instead, so a Berlin
        hourly DAG has 25 intervals on the autumn DST day.
        """
        assert self.cron is not None
        return self.cron.split()[1] not in ("*", "*/1", "0-23")

    def _from_wall(self, naive: datetime) -> Any:
        """A local wall-clock time as an instant, DST changes resolved as cron does.

        A repeated time is its first pass; a time in a gap is read with the offset
        before the gap (02:30 on the spring day becomes 03:30).
        """
        from zoneinfo import ZoneInfo

        import pendulum

        placed = naive.replace(tzinfo=ZoneInfo(self.tz), fold=0)
        return pendulum.instance(placed.astimezone(UTC)).in_timezone(self.tz)

    def next_after(self, moment: Any) -> Any:
        """The first schedule point strictly after ``moment`` (a pendulum DateTime in tz)."""
        local = self.localize(moment)
        if self.cron is not None:
            from croniter import croniter

            if self._wall_clock:
                wall = local.naive()
                nxt = croniter(self.cron, wall).get_next(datetime)
                point = self._from_wall(nxt)
                while point <= local:  # a gap moved it back behind moment: step on
                    nxt = croniter(self.cron, nxt).get_next(datetime)
                    point = self._from_wall(nxt)
                return point
            nxt = croniter(self.cron, local).get_next(datetime)
            return self.localize(nxt)
        assert self.every is not None and self.anchor is not None
        anchor = self.localize(self.anchor)
        if local < anchor:
            return anchor
        step = self.every.total_seconds()
        k = int((local - anchor).total_seconds() // step) + 1
        return anchor + self.every * k

    def floor(self, moment: Any) -> Any:
        """The last schedule point at or before ``moment`` (None if there is none)."""
        local = self.localize(moment)
        if self.cron is not None:
            from croniter import croniter

            if self._wall_clock:
                wall = local.naive().replace(second=0, microsecond=0)
                if not croniter.match(self.cron, wall):
                    wall = croniter(self.cron, wall).get_prev(datetime)
                point = self._from_wall(wall)
                while point > local:  # the repeated hour's second pass, or a gap's shift
                    wall = croniter(self.cron, wall).get_prev(datetime)
                    point = self._from_wall(wall)
                return point
            if croniter.match(self.cron, local):
                return local.replace(second=0, microsecond=0)
            return self.localize(croniter(self.cron, local).get_prev(datetime))
        assert self.every is not None and self.anchor is not None
        anchor = self.localize(self.anchor)
        if local < anchor:
            return None
        k = int((local - anchor).total_seconds() // self.every.total_seconds())
        return anchor + self.every * k

    def logical_dates(self, start: Any, end: Any) -> list[Any]:
        """Every schedule point in [start, end], in order (pendulum DateTimes in tz)."""
        first = self.localize(start)
        last = self.localize(end)
        out = []
        point = self.floor(first)
        if point is None or point < first:
            point = self.next_after(first - timedelta(microseconds=1))
        while point <= last:
            out.append(point)
            point = self.next_after(point)
        return out

    def points_on_days(self, first: date, last: date) -> list[Any]:
        """Every schedule point whose local date is in [first, last], in order.

        What a DAG whose logical date is a date runs for: a "30 2 * * *" DAG
        backfilled from 2024-01-01 to 2024-01-03 runs three dates, the last one at
        02:30 on the 3rd, after that day's midnight.
        """
        import pendulum

        end = pendulum.datetime(last.year, last.month, last.day, tz=self.tz).add(days=1)
        return self.logical_dates(first, end - timedelta(microseconds=1))

    def interval(self, logical: Any) -> tuple[Any, Any]:
        """The data interval that starts at ``logical``: (logical, next schedule point)."""
        start = self.localize(logical)
        return start, self.next_after(start)


def parse_schedule(value: Any, *, tz: str, start: Any, dag_name: str) -> Schedule | None:
    """Check a ``@dag(schedule=...)`` value and return its :class:`Schedule` (None: manual).

    Raises:
        DefinitionError: an invalid cron string or preset (quoted), a non-positive
            duration, or a duration schedule without ``start``.
    """
    if value is None:
        return None
    anchor = _anchor(start, tz, dag_name)
    if isinstance(value, timedelta):
        if value <= timedelta(0):
            raise DefinitionError(
                f"DAG {dag_name!r}: schedule={value!r} must be a positive duration"
            )
        if anchor is None:
            raise DefinitionError(
                f"DAG {dag_name!r}: a duration schedule ({value!r}) needs start=... to anchor "
                "its intervals; add start='2024-01-01' (or use a cron string)"
            )
        return Schedule(None, value, tz, anchor, str(value))
    if not isinstance(value, str):
        raise DefinitionError(
            f"DAG {dag_name!r}: schedule={value!r} is not a cron string, a preset "
            f"({', '.join(PRESETS)}), a timedelta or None"
        )
    expr = PRESETS.get(value.strip().lower(), value.strip())
    from croniter import croniter

    if expr.startswith("@") or len(expr.split()) != 5 or not croniter.is_valid(expr):
        raise DefinitionError(
            f"DAG {dag_name!r}: schedule={value!r} is not a valid 5-field cron expression "
            f"(minute hour day-of-month month day-of-week) or preset ({', '.join(PRESETS)})"
        )
    schedule = Schedule(expr, None, tz, anchor, value)
    try:  # valid syntax can still describe a time that never comes (31 February)
        schedule.next_after(anchor or "2024-01-01")
    except Exception as exc:
        raise DefinitionError(
            f"DAG {dag_name!r}: schedule={value!r} never fires ({type(exc).__name__}); "
            "check the day-of-month and month fields"
        ) from exc
    return schedule


def _anchor(start: Any, tz: str, dag_name: str) -> datetime | None:
    if start is None:
        return None
    import pendulum

    try:
        if isinstance(start, str):
            parsed: Any = pendulum.parse(start, tz=tz, exact=True)
        else:
            parsed = start
        if isinstance(parsed, datetime):
            return pendulum.instance(parsed, tz=tz) if parsed.tzinfo is None else parsed
        if isinstance(parsed, date):
            return pendulum.datetime(parsed.year, parsed.month, parsed.day, tz=tz)
    except (ValueError, TypeError, pendulum.parsing.exceptions.ParserError) as exc:
        raise DefinitionError(
            f"DAG {dag_name!r}: start={start!r} is not a date; write it as YYYY-MM-DD"
        ) from exc
    raise DefinitionError(f"DAG {dag_name!r}: start={start!r} is not a date or datetime")
