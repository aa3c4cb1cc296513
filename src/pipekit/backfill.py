"""Backfill: run a DAG once per logical date over a range, safely.

A backfill multiplies load on the systems a pipeline touches, so it is cautious by
default: automatic retries are off (every error is reported instead of hidden), one
date runs at a time, dates that already succeeded are skipped, and a failed date is
re-run as :func:`pipekit.rerun` does (only its unfinished tasks). Task failures never
raise: the :class:`pipekit.BackfillReport` says what happened to each date.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pipekit.errors import PipekitError
from pipekit.report import BackfillReport, DateOutcome
from pipekit.state import State

if TYPE_CHECKING:
    from pipekit.clock import Clock
    from pipekit.dag import DAG
    from pipekit.executors.base import ExecutorSpec
    from pipekit.run import Run
    from pipekit.stores.base import Store

__all__ = ["backfill", "logical_param"]

_REPROCESS = ("failed", "all", "none")


def logical_param(dag: DAG, param: str | None) -> str:
    """The run parameter that receives the logical date: ``param``, ``ds``, or the only date one."""
    if param is not None:
        if param not in dag.params:
            raise PipekitError(
                f"backfill of {dag.name!r}: param={param!r} is not a parameter of the DAG; "
                f"its parameters are: {', '.join(dag.params) or 'none'}"
            )
        return param
    if "ds" in dag.params:
        return "ds"
    dated = [n for n, p in dag.params.items() if p.kind in ("date", "datetime")]
    if len(dated) == 1:
        return dated[0]
    listed = ", ".join(dated) if dated else "none is annotated as a date or datetime"
    raise PipekitError(
        f"backfill of {dag.name!r}: cannot tell which parameter takes the logical date (no 'ds'; "
        f"date parameters: {listed}); pass param='<name>' or annotate one parameter as a date"
    )


def _parse(dag: DAG, what: str, value: Any, as_date: bool) -> Any:
    import pendulum

    tz = dag.tz or "UTC"
    try:
        if isinstance(value, str):
            parsed: Any = pendulum.parse(value, tz=tz, exact=True)
        elif isinstance(value, datetime):
            parsed = pendulum.instance(value, tz=tz)
        elif isinstance(value, date):
            parsed = pendulum.Date(value.year, value.month, value.day)
        else:
            raise TypeError(type(value).__name__)
    except (ValueError, TypeError, pendulum.parsing.exceptions.ParserError) as exc:
        raise PipekitError(
            f"backfill of {dag.name!r}: {what}={value!r} is not a date; write it as YYYY-MM-DD "
            "(or an ISO datetime)"
        ) from exc
    if as_date:
        return parsed.date() if isinstance(parsed, datetime) else parsed
    if isinstance(parsed, datetime):
        return parsed
    return pendulum.datetime(parsed.year, parsed.month, parsed.day, tz=tz)


def _dates(dag: DAG, start: Any, end: Any, step: Any, as_date: bool) -> list[Any]:
    first = _parse(dag, "start", start, as_date)
    last = _parse(dag, "end", end, as_date)
    if first > last:
        raise PipekitError(
            f"backfill of {dag.name!r}: start={start!r} is after end={end!r}; "
            "give the earlier date first (to run newest first: reverse=True, or --reverse "
            "on the command line)"
        )
    if step is None and dag.schedule is not None:  # the schedule's own logical dates
        if as_date:  # every point on the days from start to end, whatever its time
            return [p.date() for p in dag.schedule.points_on_days(first, last)]
        return list(dag.schedule.logical_dates(first, last))
    if step is None:
        step = timedelta(days=1)
    if not isinstance(step, timedelta):
        raise PipekitError(
            f"backfill of {dag.name!r}: step={step!r} is not a duration; pass a timedelta or "
            "pendulum.duration(...) such as timedelta(days=1)"
        )
    years, months, days, seconds = _calendar_parts(step)
    if years * 12 + months < 0 or days < 0 or seconds < 0 or step <= timedelta(0):
        raise PipekitError(
            f"backfill of {dag.name!r}: step={step!r} must be positive (every part of it); "
            "to run newest first, pass reverse=True"
        )
    if as_date and seconds:
        raise PipekitError(
            f"backfill of {dag.name!r}: step={step!r} is not a whole number of days but the "
            "logical date parameter is a date; use a step of whole days"
        )
    # Whole days and months are calendar steps (local midnight stays local midnight across
    # DST changes); only the part below a day is added as elapsed time.
    out = []
    i = 0
    current = first
    while current <= last:
        out.append(current)
        i += 1
        current = first.add(years=i * years, months=i * months, days=i * days)
        if seconds:
            current = current + timedelta(seconds=i * seconds)
    return out


def _calendar_parts(step: timedelta) -> tuple[int, int, int, float]:
    """Split a step into years, months, days and seconds (pendulum folds months into days)."""
    import pendulum

    if isinstance(step, pendulum.Duration):
        years, months = step.years, step.months
        days = step.days - years * 365 - months * 30
    else:
        years = months = 0
        days = step.days
    return years, months, days, step.seconds + step.microseconds / 1e6


def _want_progress(progress: bool | None) -> bool:
    if progress is not None:
        return progress
    if "ipykernel" in sys.modules:
        return True
    stream = sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


def backfill(
    dag: DAG,
    start: Any,
    end: Any,
    *,
    param: str | None = None,
    step: timedelta | None = None,
    max_active_runs: int = 1,
    retries: bool = False,
    reprocess: str = "failed",
    reverse: bool = False,
    dry_run: bool = False,
    delay: float = 0,
    max_failures: int | None = None,
    progress: bool | None = None,
    store: Store | str | None = None,
    executor: ExecutorSpec = "threads",
    max_workers: int | None = None,
    clock: Clock | None = None,
    **params: Any,
) -> BackfillReport:
    """Run ``dag`` once per logical date from ``start`` to ``end``, both included.

    Args:
        dag: the DAG.
        start: the first logical date (ISO string, date or datetime; read in the DAG's tz).
        end: the last logical date.
        param: the run parameter that receives each date (default: ``ds``, else the
            DAG's only date-typed parameter). It gets a pendulum Date when annotated as
            a date, else a pendulum DateTime.
        step: the interval between dates (default: the DAG's schedule, else one day).
        max_active_runs: how many dates run at once.
        retries: keep the tasks' retry policies (default False: one attempt each, so
            every failure is reported instead of retried into more load).
        reprocess: "failed" (skip dates whose latest run succeeded, re-run only the
            unfinished tasks of failed ones, run dates without a run), "all" (every
            date afresh, outputs overwritten), "none" (only dates without a run).
        reverse: newest date first.
        dry_run: run and record nothing; the report lists what would happen.
        delay: seconds between launching two dates, to keep load down.
        max_failures: after this many failed dates launch no new date.
        progress: a tqdm progress bar over dates (default: shown in a terminal or a
            notebook, hidden when output is not interactive).
        store: the history (default: the configured store).
        executor: the executor of each date's run: a name, an object (with
            ``max_active_runs=1`` only), or a factory making one (each backfill thread
            calls it once and keeps what it made from date to date).
        max_workers: tasks at once within each date's run.
        clock: time source (tests pass a fake clock; ``delay`` sleeps on it).
        **params: the other run parameters, the same for every date.

    Returns:
        A :class:`pipekit.BackfillReport`. Task failures never raise.

    Raises:
        PipekitError: bad arguments (start after end, an unparsable date, an unknown
            ``reprocess`` or ``param``, a bad run parameter, an executor object with
            ``max_active_runs`` above 1), before anything runs; an executor factory
            that fails or makes no executor, when the first date would start.
    """
    from pipekit.config import resolve_store
    from pipekit.executors import check_executor, is_factory
    from pipekit.params import bind_params, encode_params, recorded_key

    name = logical_param(dag, param)
    _check_options(dag, name, reprocess, max_active_runs, max_failures, delay, params)
    check_executor(executor, max_workers)
    if max_active_runs > 1 and not isinstance(executor, str) and not is_factory(executor):
        raise PipekitError(
            f"backfill of {dag.name!r}: executor={executor!r} is an object, which serves one "
            f"run at a time, and max_active_runs={max_active_runs} runs dates at once; pass "
            "a factory making one (executor=lambda: ...; each date's thread makes its own), "
            "the executor by name, or max_active_runs=1"
        )
    as_date = dag.params[name].kind == "date"
    dates = _dates(dag, start, end, step, as_date)
    if reverse:
        dates.reverse()
    per_date = {d: bind_params(dag.name, dag.params, {**params, name: d}, dag.tz) for d in dates}
    history = resolve_store(store)
    latest: dict[str, Run] = {}
    for recorded in history.list_runs(dag=dag.name):  # newest first: keep the first per key
        latest.setdefault(recorded_key(dag.params, recorded.params), recorded)

    plan: dict[Any, DateOutcome] = {}
    for d in dates:
        previous = latest.get(recorded_key(dag.params, encode_params(dag.name, per_date[d])))
        if previous is None:
            plan[d] = DateOutcome("run", reason="no run yet")
        elif reprocess == "all":
            plan[d] = DateOutcome("run", reason=f"reprocess='all' (had run {previous.id})")
        elif reprocess == "none":
            plan[d] = DateOutcome("skip", previous, reason=f"has run {previous.id}")
        elif previous.state == State.SUCCESS:
            plan[d] = DateOutcome("skip", previous, reason=f"succeeded in run {previous.id}")
        else:
            plan[d] = DateOutcome("rerun", previous, reason=f"{previous.state} run {previous.id}")
    order = sorted(dates)
    if dry_run:
        return BackfillReport(dag.name, name, {d: plan[d] for d in order}, dry_run=True)

    from pipekit._backfilling import Backfill

    runner = Backfill(
        dag, name, per_date, history, executor, max_workers, retries, reprocess, clock
    )
    outcomes = runner.run(
        dates,
        plan,
        max_active_runs=max_active_runs,
        delay=delay,
        max_failures=max_failures,
        show=_want_progress(progress),
    )
    report = BackfillReport(dag.name, name, {d: outcomes[d] for d in order})
    report._rerun = runner.rerun_failed
    runner.log_summary(report)
    return report


def _check_options(
    dag: DAG,
    name: str,
    reprocess: str,
    max_active_runs: int,
    max_failures: int | None,
    delay: float,
    params: Mapping[str, Any],
) -> None:
    if reprocess not in _REPROCESS:
        raise PipekitError(
            f"backfill of {dag.name!r}: reprocess={reprocess!r} is not one of "
            f"{', '.join(map(repr, _REPROCESS))}"
        )
    if (
        isinstance(max_active_runs, bool)
        or not isinstance(max_active_runs, int)
        or max_active_runs < 1
    ):
        raise PipekitError(f"backfill: max_active_runs={max_active_runs!r} must be an int >= 1")
    if max_failures is not None and (
        isinstance(max_failures, bool) or not isinstance(max_failures, int) or max_failures < 1
    ):
        raise PipekitError(f"backfill: max_failures={max_failures!r} must be an int >= 1 or None")
    if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
        raise PipekitError(f"backfill: delay={delay!r} must be a number of seconds >= 0")
    if name in params:
        raise PipekitError(
            f"backfill of {dag.name!r}: {name}= is set by the backfill for each date; "
            "pass start and end instead"
        )
