"""Backfill: run a DAG once per logical date over a range, safely.

A backfill multiplies load on the systems a pipeline touches, so it is cautious by
default: automatic retries are off (every error is reported instead of hidden), one
date runs at a time, dates that already succeeded are skipped, and a failed date is
re-run as :func:`pipekit.rerun` does (only its unfinished tasks). Task failures never
raise: the :class:`pipekit.BackfillReport` says what happened to each date.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pipekit.errors import PipekitError
from pipekit.report import BackfillReport, DateOutcome
from pipekit.state import State

if TYPE_CHECKING:
    import concurrent.futures as cf

    from pipekit.clock import Clock
    from pipekit.dag import DAG
    from pipekit.executors.base import Executor
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
        points = dag.schedule.logical_dates(first, last)
        return [p.date() for p in points] if as_date else points
    if step is None:
        step = timedelta(days=1)
    if not isinstance(step, timedelta):
        raise PipekitError(
            f"backfill of {dag.name!r}: step={step!r} is not a duration; pass a timedelta or "
            "pendulum.duration(...) such as timedelta(days=1)"
        )
    years, months, days, seconds = _calendar_parts(step)
    if step <= timedelta(0) and not (years or months):
        raise PipekitError(f"backfill of {dag.name!r}: step={step!r} must be positive")
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


def _key(params: Mapping[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)


class _NoBar:
    """Stands in for a progress bar when none is shown (tqdm is not even imported)."""

    def update(self, n: int) -> None:
        """Do nothing."""

    def set_postfix(self, **kwargs: Any) -> None:
        """Do nothing."""

    def close(self) -> None:
        """Do nothing."""


def _progress(total: int, desc: str, show: bool) -> Any:
    if not show:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="date", desc=desc, leave=True)


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
    executor: str | Executor = "threads",
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
        executor: the executor of each date's run.
        max_workers: tasks at once within each date's run.
        clock: time source (tests pass a fake clock; ``delay`` sleeps on it).
        **params: the other run parameters, the same for every date.

    Returns:
        A :class:`pipekit.BackfillReport`. Task failures never raise.

    Raises:
        PipekitError: bad arguments (start after end, an unparsable date, an unknown
            ``reprocess`` or ``param``, a bad run parameter), before anything runs.
    """
    from pipekit.config import resolve_store
    from pipekit.params import bind_params, encode_params

    name = logical_param(dag, param)
    _check_options(dag, name, reprocess, max_active_runs, max_failures, delay, params)
    as_date = dag.params[name].kind == "date"
    dates = _dates(dag, start, end, step, as_date)
    if reverse:
        dates.reverse()
    per_date = {d: bind_params(dag.name, dag.params, {**params, name: d}, dag.tz) for d in dates}
    history = resolve_store(store)
    latest: dict[str, Run] = {}
    for recorded in history.list_runs(dag=dag.name):  # newest first: keep the first per key
        latest.setdefault(_key(recorded.params), recorded)

    plan: dict[Any, DateOutcome] = {}
    for d in dates:
        previous = latest.get(_key(encode_params(dag.name, per_date[d])))
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

    runner = _Backfill(
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


class _Backfill:
    """Runs the dates of one backfill (and later its re-run of failures)."""

    def __init__(
        self,
        dag: DAG,
        param: str,
        per_date: dict[Any, dict[str, Any]],
        store: Store,
        executor: str | Executor,
        max_workers: int | None,
        retries: bool,
        reprocess: str,
        clock: Clock | None,
    ) -> None:
        import structlog

        from pipekit.clock import SystemClock

        self.dag = dag
        self.param = param
        self.per_date = per_date
        self.store = store
        self.executor = executor
        self.max_workers = max_workers
        self.retries = retries
        self.reprocess = reprocess
        self.clock = clock or SystemClock()
        self.log = structlog.get_logger("pipekit").bind(dag=dag.name)

    def one(self, d: Any, planned: DateOutcome) -> DateOutcome:
        """Run one date; never raises for a task failure."""
        from pipekit.recovery import plan_rerun
        from pipekit.results import results_for
        from pipekit.runner import execute

        try:
            if planned.action == "rerun" and planned.run is not None:
                resume, _ = plan_rerun(self.dag, planned.run, None, True, results_for(self.store))
                run = execute(
                    self.dag,
                    planned.run.params,
                    executor=self.executor,
                    max_workers=self.max_workers,
                    store=self.store,
                    raise_on_failure=False,
                    clock=self.clock,
                    retries=self.retries,
                    resume=resume,
                )
            else:
                force = self.dag.order if self.reprocess == "all" else ()
                run = execute(
                    self.dag,
                    self.per_date[d],
                    executor=self.executor,
                    max_workers=self.max_workers,
                    store=self.store,
                    raise_on_failure=False,
                    clock=self.clock,
                    retries=self.retries,
                    force=force,
                )
        except PipekitError as exc:
            self.log.error("backfill_date_failed", logical_date=str(d), error=str(exc))
            return DateOutcome(planned.action, None, f"{type(exc).__name__}: {exc}", planned.reason)
        for t in run.tasks.values():
            if t.state == State.FAILED:
                first = (t.error or "").strip().split("\n", 1)[0]
                self.log.error(
                    "backfill_task_failed",
                    logical_date=str(d),
                    run_id=run.id,
                    task=t.task_id,
                    attempt=t.attempts,
                    error=first,
                )
        return DateOutcome(planned.action, run, None, planned.reason)

    def run(
        self,
        dates: list[Any],
        plan: dict[Any, DateOutcome],
        *,
        max_active_runs: int,
        delay: float,
        max_failures: int | None,
        show: bool,
    ) -> dict[Any, DateOutcome]:
        """Launch dates in order, a few at a time; stop on Ctrl-C or after too many failures."""
        outcomes: dict[Any, DateOutcome] = {}
        todo = [d for d in dates if plan[d].action in ("run", "rerun")]
        for d in dates:
            if plan[d].action == "skip":
                outcomes[d] = plan[d]
        failures = 0
        stopped = False
        bar = _progress(len(todo), self.dag.name, show)
        import concurrent.futures as cf

        pool = cf.ThreadPoolExecutor(max_workers=max_active_runs, thread_name_prefix="pipekit-bf")
        running: dict[cf.Future[DateOutcome], Any] = {}
        pending = list(todo)
        launched = 0

        def collect(done: set[cf.Future[DateOutcome]]) -> None:
            nonlocal failures
            for fut in done:
                d = running.pop(fut)
                outcomes[d] = fut.result()
                if outcomes[d].failed:
                    failures += 1
                bar.update(1)
                bar.set_postfix(failed=failures, refresh=False)

        try:
            try:
                while pending:
                    if max_failures is not None and failures >= max_failures:
                        stopped = True
                        break
                    if len(running) >= max_active_runs:
                        done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
                        collect(done)
                        continue
                    if launched and delay:
                        self.clock.sleep(delay)
                    d = pending.pop(0)
                    running[pool.submit(self.one, d, plan[d])] = d
                    launched += 1
            except KeyboardInterrupt:
                stopped = True
                self.log.warning("backfill_interrupted", running=len(running))
            if running:  # let the dates already running end, and record them
                done, _ = cf.wait(running)
                collect(done)
        finally:
            pool.shutdown(wait=True)
            bar.close()
        for d in todo:  # never launched (an interrupt may land between pop and submit)
            if d not in outcomes:
                outcomes[d] = DateOutcome("not_run", plan[d].run, None, "stopped before it started")
        if stopped and pending:
            self.log.warning("backfill_stopped", not_run=len(pending), failures=failures)
        return outcomes

    def rerun_failed(self, report: BackfillReport) -> BackfillReport:
        """Re-run the unfinished tasks of each failed date (and start dates never run)."""
        plan: dict[Any, DateOutcome] = {}
        for d in report.failed + report.not_run:
            o = report.dates[d]
            if o.run is not None:
                plan[d] = DateOutcome("rerun", o.run, None, f"failed run {o.run.id}")
            else:
                plan[d] = DateOutcome("run", None, None, "had no run")
        dates = sorted(plan)
        outcomes = self.run(dates, plan, max_active_runs=1, delay=0, max_failures=None, show=False)
        fresh = BackfillReport(report.dag, report.param, {d: outcomes[d] for d in dates})
        fresh._rerun = self.rerun_failed
        self.log_summary(fresh)
        return fresh

    def log_summary(self, report: BackfillReport) -> None:
        """Log the report's counts, and send the DAG's callbacks one summary event."""
        from pipekit.callbacks import Event

        state = "failed" if report.failed or report.not_run else "success"
        targets = self.dag.on_failure if state == "failed" else self.dag.on_success
        if targets:
            from pipekit.params import encode_params

            first = next(iter(self.per_date.values()), {})
            fixed = {k: v for k, v in first.items() if k != self.param}
            event = Event(
                "backfill",
                self.dag.name,
                None,
                None,
                encode_params(self.dag.name, fixed),
                None,
                state,
                summary=str(report),
            )
            for target in targets:
                try:
                    target(event)
                except Exception as exc:  # a notifier never changes the outcome
                    self.log.warning(
                        "callback_failed", kind="backfill", error=f"{type(exc).__name__}: {exc}"
                    )
        emit = self.log.error if report.failed else self.log.info
        emit(
            "backfill_finished",
            dates=len(report.dates),
            succeeded=len(report.succeeded),
            failed=[str(d) for d in report.failed],
            skipped=len(report.skipped),
            not_run=[str(d) for d in report.not_run],
        )
