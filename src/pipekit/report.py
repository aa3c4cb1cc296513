"""What a backfill did, per logical date: :class:`BackfillReport`.

A backfill returns a report instead of raising: task failures are data to act on, not
exceptions. The report prints as a summary naming every failed date with its failed
task and error, shows as a table of dates by tasks in a notebook, and re-runs only the
failed tasks with :meth:`BackfillReport.rerun_failed`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from pipekit.state import State

if TYPE_CHECKING:
    from pipekit.run import Run

__all__ = ["BackfillReport", "DateOutcome"]

_COLOURS = {
    "success": "#c8e6c9",
    "failed": "#ffcdd2",
    "upstream_failed": "#ffe0b2",
    "skipped": "#e0e0e0",
    "running": "#bbdefb",
    "queued": "#f5f5f5",
}


@dataclass(frozen=True, slots=True)
class DateOutcome:
    """What happened to one logical date.

    Attributes:
        action: "run" (a new run), "rerun" (the unfinished tasks of an earlier run),
            "skip" (it already had a run that needs nothing), or "not_run" (stopped by
            ``max_failures`` or Ctrl-C before it started).
        run: the run (None when skipped without one, not run, or in a dry run).
        error: why the date failed when no run explains it (for example, its DAG
            could not be loaded for a re-run), else None.
        reason: a short phrase for the action (shown in dry runs and summaries).
    """

    action: str
    run: Run | None = None
    error: str | None = None
    reason: str = ""

    @property
    def failed(self) -> bool:
        """True when this date ran (or was meant to) and did not succeed."""
        if self.action in ("skip", "not_run"):
            return False
        if self.error is not None:
            return True
        return self.run is not None and self.run.state != State.SUCCESS


@dataclass
class BackfillReport:
    """The outcome of :func:`pipekit.backfill`, by logical date.

    Attributes:
        dag: the DAG's name.
        param: the run parameter that received each logical date.
        dates: every logical date of the range, in date order, with its outcome.
        dry_run: True when nothing ran and the outcomes are plans.
    """

    dag: str
    param: str
    dates: dict[date, DateOutcome]
    dry_run: bool = False
    _rerun: Callable[[BackfillReport], BackfillReport] | None = field(default=None, repr=False)

    @property
    def runs(self) -> dict[date, Run]:
        """Logical date to its run, in date order (dates that had a run only)."""
        return {d: o.run for d, o in self.dates.items() if o.run is not None}

    @property
    def succeeded(self) -> list[date]:
        """Dates that ran now and succeeded."""
        return [
            d
            for d, o in self.dates.items()
            if o.action in ("run", "rerun") and not o.failed and o.run is not None
        ]

    @property
    def failed(self) -> list[date]:
        """Dates whose run failed (or could not start)."""
        return [d for d, o in self.dates.items() if o.failed]

    @property
    def skipped(self) -> list[date]:
        """Dates skipped: they had already succeeded (with reprocess="none": had any run)."""
        return [d for d, o in self.dates.items() if o.action == "skip"]

    @property
    def not_run(self) -> list[date]:
        """Dates never started: ``max_failures`` was reached or the backfill was interrupted."""
        return [d for d, o in self.dates.items() if o.action == "not_run"]

    @property
    def ok(self) -> bool:
        """True when no date failed and every date was run or skipped."""
        return not self.failed and not self.not_run

    def rerun_failed(self) -> BackfillReport:
        """Re-run only the unfinished tasks of the failed dates; return a report of those dates."""
        if self._rerun is None:
            from pipekit.errors import PipekitError

            raise PipekitError(
                "this report was made by a dry run; run the backfill for real before "
                "re-running its failures"
            )
        return self._rerun(self)

    # -- presentation ------------------------------------------------------------------

    def _failure_line(self, d: date, o: DateOutcome) -> str:
        if o.run is None:
            return f"  {d}: {o.error}"
        if o.error is not None:  # the date failed outside its tasks (its history, say)
            return f"  {d}: {o.error}  [run {o.run.id}]"
        bad = [t for t in o.run.tasks.values() if t.state == State.FAILED]
        if not bad:
            return f"  {d}: run {o.run.id} {o.run.state} ({o.run.error or 'no task failed'})"
        lines = []
        for t in bad:
            reason = (t.error or "").strip().split("\n", 1)[0]
            lines.append(f"  {d}: {t.task_id} failed: {reason}  [run {o.run.id}]")
        return "\n".join(lines)

    def __str__(self) -> str:
        """A summary: counts, then each failed date with its task and error, then dates not run."""
        n = len(self.dates)
        if self.dry_run:
            lines = [f"backfill of {self.dag} ({n} dates, dry run): nothing was run"]
            lines += [f"  {d}: {o.action} ({o.reason})" for d, o in self.dates.items()]
            return "\n".join(lines)
        head = (
            f"backfill of {self.dag}: {n} date{'s' if n != 1 else ''}, "
            f"{len(self.succeeded)} succeeded, "
            f"{len(self.failed)} failed, {len(self.skipped)} skipped, "
            f"{len(self.not_run)} not run"
        )
        lines = [head]
        if self.failed:
            lines.append("failed:")
            lines += [self._failure_line(d, self.dates[d]) for d in self.failed]
        if self.not_run:
            lines.append("not run: " + ", ".join(str(d) for d in self.not_run))
        if self.failed:
            lines.append("re-run only the failed tasks with report.rerun_failed()")
        return "\n".join(lines)

    def __repr__(self) -> str:
        """The summary's first line, as an expression-like tag."""
        return f"<BackfillReport {str(self).splitlines()[0]}>"

    def _repr_html_(self) -> str:
        """A table of dates by tasks, each cell coloured by the task's state (for notebooks)."""
        import html

        task_ids: list[str] = []
        for o in self.dates.values():
            if o.run is not None:
                for t in o.run.tasks:
                    if t not in task_ids:
                        task_ids.append(t)
        head = "".join(f"<th>{html.escape(t)}</th>" for t in task_ids)
        rows = []
        for d, o in self.dates.items():
            cells = []
            tasks: Mapping[str, Any] = o.run.tasks if o.run is not None else {}
            for t in task_ids:
                tr = tasks.get(t)
                if tr is None:
                    cells.append("<td></td>")
                    continue
                state = str(tr.state)
                tip = html.escape((tr.error or "").strip().split("\n", 1)[0], quote=True)
                cells.append(
                    f'<td style="background:{_COLOURS.get(state, "#fff")}" title="{tip}">'
                    f"{html.escape(state)}</td>"
                )
            if o.failed:
                status = "failed"
            elif o.action in ("not_run", "skip") or o.run is None:
                status = {"not_run": "not run", "skip": "skipped"}.get(o.action, o.action)
            else:
                status = str(o.run.state)
            rows.append(
                f"<tr><th>{html.escape(str(d))}</th><td>{html.escape(str(status))}</td>"
                f"{''.join(cells)}</tr>"
            )
        summary = html.escape(str(self).splitlines()[0])
        return (
            f"<div><p><b>{summary}</b></p>"
            f'<table class="pipekit-backfill"><thead><tr><th>{html.escape(self.param)}</th>'
            f"<th>run</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        )
