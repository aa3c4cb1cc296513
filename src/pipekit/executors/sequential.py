"""The sequential executor: each attempt runs inline, in the run loop's thread.

The lowest overhead and the easiest to debug (a breakpoint in a task just works).
An attempt with a timeout runs in a helper thread that the loop waits on, so the
run moves on when the time is up even if the function cannot be interrupted.
"""

from __future__ import annotations

import threading

from pipekit.errors import TaskTimeout
from pipekit.executors.base import (
    Job,
    Outcome,
    Report,
    check_max_workers,
    format_error,
    invoke,
    invoke_captured,
)

__all__ = ["SequentialExecutor"]


class SequentialExecutor:
    """Runs one attempt at a time, inline. ``capacity`` is always 1."""

    capacity = 1
    runs_inline = True  # the loop may call a job without a timeout itself

    def __init__(self, max_workers: int | None = None) -> None:
        check_max_workers(max_workers)
        self._report: Report | None = None

    def start(self, report: Report) -> None:
        """Remember where outcomes go."""
        self._report = report

    def submit(self, job: Job) -> None:
        """Run ``job`` now and report its outcome before returning."""
        assert self._report is not None, "start() first"
        if job.timeout is None:
            self._report(invoke(job))
            return
        box: list[Outcome] = []
        worker = threading.Thread(
            target=lambda: box.append(invoke_captured(job)),
            name=f"pipekit-{job.context.task}",
            daemon=True,
        )
        worker.start()
        worker.join(job.timeout)
        if box:  # it ended, whatever it raised (the helper thread catches everything)
            self._report(box[0])
        else:  # still running: abandon the thread, the run goes on
            exc = TaskTimeout(job.context.task, job.timeout)
            self._report(Outcome(job.key, False, None, exc, format_error(exc)))

    def cancel(self, key: int) -> None:
        """Nothing to do: inline attempts have ended before the loop could cancel them."""

    def shutdown(self, *, cancel: bool = False) -> None:
        """Nothing to release."""
