"""The sequential executor: each attempt runs inline, in the run loop's thread.

The lowest overhead and the easiest to debug (a breakpoint in a task just works).
An attempt with a timeout runs in a helper thread that the loop waits on, so the
run moves on when the time is up even if the function cannot be interrupted.
"""

from __future__ import annotations

from pipekit.executors.base import Job, Report, check_max_workers, invoke, invoke_with_timeout

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
        else:  # in a helper thread, abandoned if still running when the time is up
            self._report(invoke_with_timeout(job, job.timeout))

    def cancel(self, key: int) -> None:
        """Nothing to do: inline attempts have ended before the loop could cancel them."""

    def shutdown(self, *, cancel: bool = False) -> None:
        """Nothing to release."""
