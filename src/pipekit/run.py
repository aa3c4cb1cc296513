"""What a run leaves behind: :class:`Run`, :class:`TaskRun` and :class:`Attempt`.

These are frozen value objects. The run loop builds them for the caller of
``DAG.run()``; stores rebuild them from history (without task results, which live
only in the process that computed them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pipekit._fastinit import fast_init
from pipekit.state import State

__all__ = ["Attempt", "Run", "TaskRun"]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt at one task, as recorded in the history.

    Attributes:
        run_id: the run it belongs to.
        task_id: the task attempted.
        number: 1 for the first attempt, 2 for the first retry, and so on.
        state: ``running`` while it runs, then ``success`` or ``failed``.
        started_at: when it started (UTC).
        ended_at: when it ended, or None while running (or if the process died).
        error: the error message and traceback text of a failed attempt.
    """

    run_id: str
    task_id: str
    number: int
    state: State
    started_at: datetime
    ended_at: datetime | None = None
    error: str | None = None


@fast_init
@dataclass(frozen=True, slots=True)
class TaskRun:
    """The outcome of one task within a run.

    Attributes:
        task_id: the task's id in the DAG.
        state: its :class:`State`.
        attempts: how many attempts were started (their history is in the store).
        result: the value the task returned (None when read back from a store).
        error: message and traceback text of the last failed attempt, else None.
        started_at: start of the first attempt of its latest execution (a re-run that
            runs the task again starts it again; every attempt's times stay in the
            attempt history).
        ended_at: end of the last attempt.
    """

    task_id: str
    state: State
    attempts: int = 0
    result: Any = None
    error: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Run:
    """One run of a DAG with fixed parameters.

    Attributes:
        id: unique, time-ordered run id.
        dag: the DAG's name.
        params: every run parameter, defaults included, so a re-run is identical.
        state: ``running``, ``success`` or ``failed``.
        started_at: when the run started (UTC).
        ended_at: when it ended, or None while running (or if its process died).
        tasks: task id to :class:`TaskRun`, in topological order.
        module: the module the DAG was imported from (``__main__`` for a script).
        file: the file that defines the DAG, if known.
        error: why the run as a whole failed when no task explains it (an interrupt).
    """

    id: str
    dag: str
    params: Mapping[str, Any]
    state: State
    started_at: datetime
    ended_at: datetime | None = None
    tasks: Mapping[str, TaskRun] = field(default_factory=dict)
    module: str | None = None
    file: str | None = None
    error: str | None = None

    @property
    def failed_tasks(self) -> list[str]:
        """Ids of the tasks whose own attempts failed (not their descendants)."""
        return [t.task_id for t in self.tasks.values() if t.state == State.FAILED]

    @property
    def duration(self) -> float | None:
        """Seconds from start to end, or None if the run has not ended."""
        if self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()

    def summary(self) -> str:
        """A plain-text table of the run's tasks: state, attempts, seconds, first error line.

        Example:
            >>> print(run.summary())  # doctest: +SKIP
            run 20240105T101530-3fa9c2e1b4d7  dag etl  success  0.01s
            task       state    attempts  seconds  error
            extract    success  1         0.000
        """
        rows = [("task", "state", "attempts", "seconds", "error")]
        for t in self.tasks.values():
            secs = (
                f"{(t.ended_at - t.started_at).total_seconds():.3f}"
                if t.started_at is not None and t.ended_at is not None
                else ""
            )
            first = (t.error or "").strip().split("\n", 1)[0]
            rows.append((t.task_id, str(t.state), str(t.attempts), secs, first))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = [
            "  ".join([*(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)), r[4]]).rstrip()
            for r in rows
        ]
        took = f"{self.duration:.2f}s" if self.duration is not None else "not ended"
        head = f"run {self.id}  dag {self.dag}  {self.state}  {took}"
        if self.error:
            head += f"  ({self.error})"
        return "\n".join([head, *lines])

    def __str__(self) -> str:
        """One line: id, DAG, state and task counts, for logs and the REPL."""
        counts: dict[str, int] = {}
        for t in self.tasks.values():
            counts[t.state] = counts.get(t.state, 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        return f"Run {self.id} of {self.dag!r}: {self.state} ({summary})"
