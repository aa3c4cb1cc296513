"""The threads executor: attempts run in a pool of daemon threads.

The default executor: right for I/O-bound tasks (databases, HTTP, files) and for
CPU-bound work in libraries that release the GIL. Worker threads are daemons and a
timed-out attempt's thread is abandoned and replaced, so a stuck function never
holds up the run or the interpreter's exit.
"""

from __future__ import annotations

import os
import queue
import threading

from pipekit.executors.base import Job, Outcome, Report, check_max_workers, format_error, invoke

__all__ = ["ThreadsExecutor"]

_STOP = None


def default_threads() -> int:
    """The default pool size, as concurrent.futures picks it: min(32, cpus + 4)."""
    return min(32, (os.cpu_count() or 1) + 4)


class ThreadsExecutor:
    """Runs up to ``max_workers`` attempts at once in daemon threads.

    ``inline_alone``: when a task is the only one that can run (nothing else running,
    nothing else ready, no retry pending, no timeout), the run loop runs it in its own
    thread instead of handing it to a worker and back: a chain of tasks then costs no
    thread switches, and nothing else could have run meanwhile anyway.
    """

    inline_alone = True

    def __init__(self, max_workers: int | None = None) -> None:
        check_max_workers(max_workers)
        self.capacity = max_workers or default_threads()
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._cancelled: set[int] = set()
        self._running: set[int] = set()
        self._threads = 0
        self._submitted = 0
        self._report: Report | None = None

    def start(self, report: Report) -> None:
        """Remember where outcomes go; threads start as work arrives.

        Called again for each run when one executor serves several runs in turn (a
        backfill's dates): its idle threads then serve the next run.
        """
        self._report = report

    def _spawn(self) -> None:
        self._threads += 1
        threading.Thread(target=self._work, name="pipekit-worker", daemon=True).start()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is _STOP:
                return
            with self._lock:
                self._running.add(job.key)
            try:
                outcome = invoke(job)
            except BaseException as exc:  # never let a job end without an outcome
                outcome = Outcome(job.key, False, None, exc, format_error(exc))
            with self._lock:
                self._running.discard(job.key)
                if job.key in self._cancelled:
                    # This thread was replaced when its job timed out: leave quietly.
                    self._cancelled.discard(job.key)
                    return
            report = self._report  # read per job: a reused executor serves one run after another
            assert report is not None
            report(outcome)

    def submit(self, job: Job) -> None:
        """Queue ``job`` for the next free thread, starting one if the pool is not full."""
        with self._lock:
            self._submitted += 1
            if self._threads < min(self.capacity, self._submitted):
                self._spawn()
        self._jobs.put(job)

    def cancel(self, key: int) -> None:
        """Abandon the thread running ``key`` and start a replacement (if it still runs)."""
        with self._lock:
            if key not in self._running:
                return  # it has finished: its outcome is reported (and will be ignored)
            self._cancelled.add(key)
            self._threads -= 1
            self._spawn()

    def shutdown(self, *, cancel: bool = False) -> None:
        """Tell idle threads to exit; abandoned or busy daemon threads end with their job."""
        with self._lock:
            n, self._threads = self._threads, 0
        for _ in range(n):
            self._jobs.put(_STOP)
