"""Schedules: when a DAG's runs are due, as data intervals in the DAG's timezone.

As in Airflow, each run covers a data interval: its logical date (the ``ds``
parameter) is the interval's start, and the run is due once the interval has ended.
A daily DAG's run for 2024-01-05 is due at 2024-01-06 00:00 in the DAG's timezone.

Schedules are 5-field cron strings (parsed by croniter), presets (``@hourly``,
``@daily``, ``@weekly``, ``@monthly``, ``@yearly``) or fixed durations (a timedelta or
pendulum Duration, anchored at the DAG's ``start``). Times are computed by pendulum in
the DAG's timezone, so they are right across daylight-saving changes: an hourly DAG in
Europe/Berlin has 23 intervals on 2024-03-31 and 25 on 2024-10-27.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
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

    def _local(self, moment: Any) -> Any:
        import pendulum

        if isinstance(moment, datetime):
            if moment.tzinfo is None:  # a naive datetime is read in the schedule's timezone
                return pendulum.instance(moment, tz=self.tz)
            return pendulum.instance(moment).in_timezone(self.tz)
        if isinstance(moment, date):
            return pendulum.datetime(moment.year, moment.month, moment.day, tz=self.tz)
        if isinstance(moment, str):
            parsed = pendulum.parse(moment, tz=self.tz, exact=True)
            return self._local(parsed)
        raise TypeError(f"not a date or datetime: {moment!r}")

    def next_after(self, moment: Any) -> Any:
        """The first schedule point strictly after ``moment`` (a pendulum DateTime in tz)."""
        local = self._local(moment)
        if self.cron is not None:
            from croniter import croniter

            nxt = croniter(self.cron, local).get_next(datetime)
            return self._local(nxt)
        assert self.every is not None and self.anchor is not None
        anchor = self._local(self.anchor)
        if local < anchor:
            return anchor
        step = self.every.total_seconds()
        k = int((local - anchor).total_seconds() // step) + 1
        return anchor + self.every * k

    def floor(self, moment: Any) -> Any:
        """The last schedule point at or before ``moment`` (None if there is none)."""
        local = self._local(moment)
        if self.cron is not None:
            from croniter import croniter

            if croniter.match(self.cron, local):
                return local.replace(second=0, microsecond=0)
            return self._local(croniter(self.cron, local).get_prev(datetime))
        assert self.every is not None and self.anchor is not None
        anchor = self._local(self.anchor)
        if local < anchor:
            return None
        k = int((local - anchor).total_seconds() // self.every.total_seconds())
        return anchor + self.every * k

    def logical_dates(self, start: Any, end: Any) -> list[Any]:
        """Every schedule point in [start, end], in order (pendulum DateTimes in tz)."""
        first = self._local(start)
        last = self._local(end)
        out = []
        point = self.floor(first)
        if point is None or point < first:
            point = self.next_after(first - timedelta(microseconds=1))
        while point <= last:
            out.append(point)
            point = self.next_after(point)
        return out

    def interval(self, logical: Any) -> tuple[Any, Any]:
        """The data interval that starts at ``logical``: (logical, next schedule point)."""
        start = self._local(logical)
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
