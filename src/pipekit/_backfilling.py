"""Running a backfill's dates: one at a time in the caller's thread, or a few in a pool.

:func:`pipekit.backfill` plans which dates run (see :mod:`pipekit.backfill`); the
:class:`Backfill` here runs them. Every date shares one group-commit writer and, per
thread, one executor, so that a year of small daily runs costs little more than its
tasks. Ctrl-C stops launching dates and lets the running ones end.
"""

from __future__ import annotations

import signal
import threading
from typing import TYPE_CHECKING, Any

from pipekit._writer import GroupCommit
from pipekit.errors import PipekitError
from pipekit.report import BackfillReport, DateOutcome
from pipekit.state import State

if TYPE_CHECKING:
    import concurrent.futures as cf

    from pipekit.clock import Clock
    from pipekit.dag import DAG
    from pipekit.executors.base import Executor, ExecutorSpec
    from pipekit.run import Run
    from pipekit.stores.base import Store

__all__ = ["Backfill", "progress_bar"]

_REUSABLE = ("sequential", "threads", "processes")
"""Executors by name that a backfill keeps up from one date to the next."""


class _NoBar:
    """Stands in for a progress bar when none is shown (tqdm is not even imported)."""

    def update(self, n: int) -> None:
        """Do nothing."""

    def set_postfix(self, **kwargs: Any) -> None:
        """Do nothing."""

    def close(self) -> None:
        """Do nothing."""


def progress_bar(total: int, desc: str, show: bool) -> Any:
    if not show:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="date", desc=desc, leave=True)


class _Progress:
    """The progress bar and the count of failed dates."""

    def __init__(self, bar: Any, max_failures: int | None) -> None:
        self.bar = bar
        self.max_failures = max_failures
        self.failures = 0

    def count(self, outcome: DateOutcome) -> None:
        """One more date ended."""
        if outcome.failed:
            self.failures += 1
        self.bar.update(1)
        self.bar.set_postfix(failed=self.failures, refresh=False)

    def too_many(self) -> bool:
        """True once ``max_failures`` dates failed (launch no more)."""
        return self.max_failures is not None and self.failures >= self.max_failures


class _GentleInterrupt:
    """In the main thread, turn the first Ctrl-C into a request to stop launching dates.

    A second Ctrl-C raises KeyboardInterrupt as usual. Elsewhere (a backfill called
    from another thread, where no signal arrives) it does nothing.
    """

    def __init__(self, log: Any) -> None:
        self.log = log
        self.requested = False
        self._previous: Any = None
        self._installed = False

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.log.warning("backfill_interrupted", running=1)

    def __enter__(self) -> _GentleInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)


class Backfill:
    """Runs the dates of one backfill (and later its re-run of failures)."""

    writer: GroupCommit
    """The group-commit writer that every date of one :meth:`run` shares."""

    def __init__(
        self,
        dag: DAG,
        param: str,
        per_date: dict[Any, dict[str, Any]],
        store: Store,
        executor: ExecutorSpec,
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
        # Shared by every date of a run(): one group-commit writer (a date's history is
        # committed with the next ones', not on its own; made by run()), and per backfill
        # thread one executor made by name or factory, reused date after date (its
        # threads or worker processes stay up).
        self._local = threading.local()
        self._engines: list[Executor] = []
        self._engines_lock = threading.Lock()

    def _engine(self) -> tuple[ExecutorSpec, bool]:
        """This thread's executor for the next date, and whether it is kept across dates."""
        from pipekit.executors import is_factory, make_executor

        if isinstance(self.executor, str):
            if self.executor not in _REUSABLE:
                return self.executor, False
        elif not is_factory(self.executor):
            return self.executor, False
        engine: Executor | None = getattr(self._local, "engine", None)
        if engine is None:
            engine = make_executor(self.executor, self.max_workers)
            self._local.engine = engine
            with self._engines_lock:
                self._engines.append(engine)
        return engine, True

    def _drop_engine(self) -> None:
        """Forget this thread's executor (a date that raised may have shut it down)."""
        engine: Executor | None = getattr(self._local, "engine", None)
        if engine is None:
            return
        self._local.engine = None
        with self._engines_lock:
            if engine in self._engines:
                self._engines.remove(engine)
        from pipekit.executors import dispose

        dispose(engine, cancel=True)

    def _release(self) -> None:
        """Shut down the executors kept across dates, and commit the last history."""
        with self._engines_lock:
            engines, self._engines = self._engines, []
        self._local = threading.local()
        from pipekit.executors import dispose

        try:
            for engine in engines:
                dispose(engine)
        finally:
            self.writer.close()

    def _unrecorded(self, outcomes: dict[Any, DateOutcome]) -> None:
        """Mark failed each date whose history could not all be committed."""
        errors = self.writer.errors()
        if not errors:
            return
        for d, o in list(outcomes.items()):
            if o.run is not None and o.run.id in errors and o.action in ("run", "rerun"):
                error = errors[o.run.id]
                text = f"history not recorded: {type(error).__name__}: {error}"
                self.log.error("backfill_date_failed", logical_date=str(d), error=text)
                outcomes[d] = DateOutcome(o.action, o.run, text, o.reason)

    def one(self, d: Any, planned: DateOutcome) -> DateOutcome:
        """Run one date; never raises for a task failure."""
        from pipekit.recovery import plan_rerun
        from pipekit.results import results_for
        from pipekit.runner import execute

        engine, keep = self._engine()
        common: dict[str, Any] = {
            "executor": engine,
            "max_workers": None if keep else self.max_workers,
            "store": self.store,
            "raise_on_failure": False,
            "clock": self.clock,
            "retries": self.retries,
            "writer": self.writer,
            "keep_executor": keep,
        }
        try:
            if planned.action == "rerun" and planned.run is not None:
                resume, _ = plan_rerun(self.dag, planned.run, None, True, results_for(self.store))
                run = execute(self.dag, planned.run.params, resume=resume, **common)
            else:
                force = self.dag.order if self.reprocess == "all" else ()
                run = execute(self.dag, self.per_date[d], force=force, **common)
        except PipekitError as exc:
            self._drop_engine()
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
        outcomes: dict[Any, DateOutcome] = {d: plan[d] for d in dates if plan[d].action == "skip"}
        todo = [d for d in dates if plan[d].action in ("run", "rerun")]
        progress = _Progress(progress_bar(len(todo), self.dag.name, show), max_failures)
        pending = list(todo)
        self.writer = GroupCommit(self.store)  # fresh: a run's errors are its own
        try:
            if max_active_runs == 1:
                stopped = self._one_at_a_time(pending, plan, outcomes, progress, delay)
            else:
                stopped = self._in_pool(pending, plan, outcomes, progress, delay, max_active_runs)
        finally:
            progress.bar.close()
            self._release()
        self._unrecorded(outcomes)
        for d in todo:  # never launched (an interrupt may land between pop and submit)
            if d not in outcomes:
                outcomes[d] = DateOutcome("not_run", plan[d].run, None, "stopped before it started")
        if stopped and pending:
            self.log.warning("backfill_stopped", not_run=len(pending), failures=progress.failures)
        return outcomes

    def _one_at_a_time(
        self,
        pending: list[Any],
        plan: dict[Any, DateOutcome],
        outcomes: dict[Any, DateOutcome],
        progress: _Progress,
        delay: float,
    ) -> bool:
        """Run dates one by one in this thread; True when stopped early.

        The first Ctrl-C lets the running date finish and launches no more (a second
        one interrupts the running date too); handled here instead of by a thread pool,
        dates cost no thread hand-offs.
        """
        with _GentleInterrupt(self.log) as interrupt:
            launched = False
            while pending:
                if progress.too_many() or interrupt.requested:
                    return True
                if launched and delay:
                    self.clock.sleep(delay)
                    if interrupt.requested:  # Ctrl-C during the pause: launch nothing more
                        return True
                d = pending[0]
                try:
                    outcome = self.one(d, plan[d])
                except KeyboardInterrupt:  # the second Ctrl-C: the date's run recorded it
                    self._drop_engine()
                    run = self._recorded_run(d)  # so rerun_failed() resumes it
                    outcome = DateOutcome(plan[d].action, run, "KeyboardInterrupt", "interrupted")
                    interrupt.requested = True
                pending.pop(0)
                launched = True
                outcomes[d] = outcome
                progress.count(outcome)
        return False

    def _in_pool(
        self,
        pending: list[Any],
        plan: dict[Any, DateOutcome],
        outcomes: dict[Any, DateOutcome],
        progress: _Progress,
        delay: float,
        max_active_runs: int,
    ) -> bool:
        """Run up to ``max_active_runs`` dates at once in threads; True when stopped early."""
        import concurrent.futures as cf

        pool = cf.ThreadPoolExecutor(max_workers=max_active_runs, thread_name_prefix="pipekit-bf")
        running: dict[cf.Future[DateOutcome], Any] = {}

        def collect(done: set[cf.Future[DateOutcome]]) -> None:
            for fut in done:
                d = running.pop(fut)
                outcomes[d] = fut.result()
                progress.count(outcomes[d])

        stopped = False
        try:
            try:
                launched = 0
                while pending:
                    if progress.too_many():
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
        return stopped

    def _recorded_run(self, d: Any) -> Run | None:
        """The newest recorded run of date ``d`` (an interrupted one records its end)."""
        from pipekit.params import encode_params, recorded_key

        want = recorded_key(self.dag.params, encode_params(self.dag.name, self.per_date[d]))
        try:  # (the interrupted run flushed its own history)
            for run in self.store.list_runs(dag=self.dag.name):  # newest first
                if recorded_key(self.dag.params, run.params) == want:
                    return run
        except Exception as exc:  # the store may be what failed: the date has no run then
            self.log.warning("run_not_found", logical_date=str(d), error=str(exc))
        return None

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
