"""The threads executor: attempts run in a pool of daemon threads.

The default executor: right for I/O-bound tasks (databases, HTTP, files) and for
CPU-bound work in libraries that release the GIL. Worker threads are daemons and a
timed-out attempt's thread is abandoned (a new one takes its place when a job needs
it), so a stuck function never holds up the run or the interpreter's exit.

Waking a thread is the expensive part of a hand-off: the woken thread must then wait
for the GIL, and each such wait costs a pair of context switches (a cross-core one
when the loop and the worker sit on different cores). So the pool wakes as few threads
as keep every queued job moving: at most one worker at a time is *searching* (woken or
started, not yet at the queue). A worker that takes a job while more are queued sends
one more worker to the queue before it runs its job, in case the job blocks; a worker
that finishes takes the next queued job itself. A burst of short jobs therefore runs
on one or two threads instead of waking one thread per job, and blocking jobs still
each get a thread of their own, one wake-up after another. Threads start only when a
job is queued with none idle or searching, so the pool grows to what the work needs:
at most ``max_workers`` threads run jobs (abandoned threads, still stuck in a timed-out
function, are not counted). ``shutdown()`` wakes every idle worker at once, to exit.

The cheapest hand-off is none. The run loop runs a task in its own thread when it is
the only one that can run (``inline_alone``), and, when it would otherwise wait for
outcomes while no worker runs a job, it may take a queued job of a *quick* task (one
whose last attempt in this executor took under ``quick`` seconds) and run it itself
(:meth:`ThreadsExecutor.run_quick`). A backfill's many small tasks then run on the
loop's thread from the second date on, while tasks that take longer, or are not
known yet, keep going to the workers.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import deque

from pipekit.errors import PipekitError
from pipekit.executors.base import Job, Outcome, Report, check_max_workers, invoke, invoke_captured

__all__ = ["ThreadsExecutor"]


def default_threads() -> int:
    """The default pool size, as concurrent.futures picks it: min(32, cpus + 4)."""
    return min(32, (os.cpu_count() or 1) + 4)


class _Seat:
    """One worker thread: its sleep lock, its pool generation, whether its job was abandoned.

    :meth:`ThreadsExecutor.shutdown` starts a new generation, so that a thread of an
    earlier run never takes a job of the next one.
    """

    __slots__ = ("abandoned", "asleep", "generation")

    def __init__(self, generation: int) -> None:
        self.asleep = threading.Lock()  # held while the thread sleeps; released to wake it
        self.asleep.acquire()
        self.generation = generation
        self.abandoned = False


class ThreadsExecutor:
    """Runs up to ``max_workers`` attempts at once in daemon threads.

    ``inline_alone``: when a task is the only one that can run (nothing else running,
    nothing else ready, no retry pending, no timeout), the run loop runs it in its own
    thread instead of handing it to a worker and back: a chain of tasks then costs no
    thread switches, and nothing else could have run meanwhile anyway.

    ``quick`` (seconds, default 1 ms; 0 turns it off): see :meth:`run_quick`.
    """

    inline_alone = True

    def __init__(self, max_workers: int | None = None, *, quick: float = 0.001) -> None:
        check_max_workers(max_workers)
        if not isinstance(quick, int | float) or isinstance(quick, bool) or not quick >= 0:
            raise PipekitError(
                f"quick={quick!r} is not a number of seconds; pass a duration such as 0.001, "
                "or 0 to run every task on a worker thread"
            )
        self.capacity = max_workers or default_threads()
        self.quick = float(quick)
        """Seconds: a task whose last attempt here took less may run in the loop's thread."""
        self._lock = threading.Lock()  # guards every field below
        # Queued jobs, each with where its outcome goes (the run that submitted it).
        self._jobs: deque[tuple[Job, Report]] = deque()
        # One lock per sleeping worker, held while it sleeps; releasing it wakes that
        # worker. Last in, first out: the thread that ran most recently is woken first.
        self._idle: list[threading.Lock] = []
        self._searching = 0  # workers woken or started that have not looked at _jobs yet
        self._threads = 0  # live workers of this generation, less those abandoned
        self._generation = 0  # counts shutdowns: workers of an older one exit when next free
        self._running: dict[int, _Seat] = {}  # keys of jobs a worker has taken, and the worker
        self._report: Report | None = None
        self._quick: dict[tuple[str, str], bool] = {}  # (dag, task) -> its last attempt was
        self._timer = time.perf_counter  # times attempts for ``quick`` (tests replace it)

    def start(self, report: Report) -> None:
        """Remember where outcomes go; threads start as work arrives.

        Called again for each run when one executor serves several runs in turn (a
        backfill's dates): its idle threads then serve the next run. After
        :meth:`shutdown`, the threads of the earlier run exit and new ones start.
        """
        self._report = report

    def _wake(self) -> None:
        """Send one more worker to the queue (the caller holds ``_lock``).

        The worker that went idle last, else a new thread if the pool is not full.
        """
        if self._idle:
            self._searching += 1
            self._idle.pop().release()
        elif self._threads < self.capacity:
            thread = threading.Thread(
                target=self._work, args=(self._generation,), name="pipekit-worker", daemon=True
            )
            try:
                thread.start()
            except RuntimeError:  # "can't start new thread": the system's thread limit
                if self._threads == 0:
                    raise  # no worker at all could ever run the queued jobs
                return  # a busy worker takes the queued job when it is done
            self._searching += 1  # before the new thread can take _lock and count down
            self._threads += 1

    def _take(self, seat: _Seat) -> tuple[Job, Report] | None:
        """The next queued job for the worker ``seat``, or None (the caller holds ``_lock``)."""
        jobs = self._jobs
        if not jobs:
            return None
        taken = jobs.popleft()
        self._running[taken[0].key] = seat
        if jobs and not self._searching:
            # More are queued and this job may block: another worker. If the system
            # refuses a thread, this worker comes back for the rest when it is done.
            with contextlib.suppress(RuntimeError):
                self._wake()
        return taken

    def _next(self, seat: _Seat, searching: bool) -> tuple[Job, Report] | None:
        """A worker's next job, sleeping on its lock while there is none; None: exit.

        ``searching``: the worker was counted as on its way to the queue (just started
        or woken). A worker of a generation that was shut down exits, uncounted: the
        shutdown already reset the counts.
        """
        while True:
            with self._lock:
                if seat.generation != self._generation:
                    return None
                if searching:
                    self._searching -= 1
                taken = self._take(seat)
                if taken is not None:
                    return taken
                self._idle.append(seat.asleep)
            seat.asleep.acquire()  # blocks until _wake or shutdown() releases it
            searching = True

    def _work(self, generation: int) -> None:
        seat = _Seat(generation)
        taken = self._next(seat, True)
        quick, clock = self._quick, self._timer
        while taken is not None:
            job, report = taken
            began = clock()
            outcome = invoke_captured(job)
            ctx = job.context
            quick[ctx.dag, ctx.task] = clock() - began < self.quick
            with self._lock:
                if self._running.get(job.key) is seat:
                    del self._running[job.key]
                if seat.abandoned:
                    return  # this thread was replaced when its job timed out: leave quietly
            report(outcome)  # to the run that submitted the job, even after a shutdown
            taken = self._next(seat, False)

    def submit(self, job: Job) -> None:
        """Queue ``job``; wake a worker for it unless one is already on its way."""
        report = self._report
        assert report is not None, "start() first"
        with self._lock:
            self._jobs.append((job, report))
            if not self._searching:
                try:
                    self._wake()
                except BaseException:
                    self._jobs.pop()  # not queued after all: the caller sees why
                    raise

    def run_quick(self) -> Outcome | None:
        """Run the newest queued job in the calling thread if its task is quick; else None.

        The run loop calls this where it would wait for outcomes, when no attempt has a
        deadline and no retry is pending. A task is quick when its last attempt in this
        executor (on a worker or here) took less than :attr:`quick` seconds: running it
        here costs no thread hand-off (two wake-ups, 20-25 µs each on a small VM),
        where a worker would only start it later. Nothing is taken while a worker runs
        a job; a worker that takes another queued job meanwhile waits, for its outcome
        to be read, as long as this job runs (under ``quick`` seconds the last time,
        unless the task got slower). The job is taken off the queue, so it runs once,
        and its outcome is returned instead of reported. The other queued jobs keep
        the worker already sent for them, so a job that waits for another queued one
        still meets it; while the job runs here, though, the loop launches nothing, so
        a task that waits for a task that is not yet launched (and not its upstream)
        waits for good: declare such a dependency, or use ``quick=0``. An exception
        that is the task's failure fails the attempt, as on a worker; a
        ``KeyboardInterrupt`` (or another interruption, see
        :func:`~pipekit.executors.base.task_failed`) propagates, as it would from the
        loop's wait.
        """
        quick = self._quick
        with self._lock:
            jobs = self._jobs
            if not jobs or self._running:  # never while a worker runs a job
                return None
            job = jobs[-1][0]
            ctx = job.context
            if not quick.get((ctx.dag, ctx.task)):
                return None
            jobs.pop()
        clock = self._timer
        began = clock()
        try:
            return invoke(job)  # only an interruption (Ctrl-C) escapes it
        finally:
            quick[ctx.dag, ctx.task] = clock() - began < self.quick

    def cancel(self, key: int) -> None:
        """Abandon the thread running ``key``; a new thread takes its place when needed.

        A job still waiting in the queue is dropped, never run.
        """
        with self._lock:
            seat = self._running.pop(key, None)
            if seat is None:
                for i, (job, _) in enumerate(self._jobs):
                    if job.key == key:
                        del self._jobs[i]
                        break
                return  # finished (its outcome is reported, and ignored), or dropped
            seat.abandoned = True
            self._threads -= 1
            if self._jobs and not self._searching:
                self._wake()

    def shutdown(self, *, cancel: bool = False) -> None:
        """Tell idle threads to exit; abandoned or busy daemon threads end with their job.

        With ``cancel`` (an interrupted run), jobs still waiting in the queue are dropped.
        A busy thread still reports its job's outcome to its own run, then exits: the
        next run (if this executor serves another) gets threads of its own.
        """
        with self._lock:
            if cancel:
                self._jobs.clear()
            self._generation += 1
            self._threads = 0
            self._searching = 0
            self._running.clear()
            idle, self._idle = self._idle, []
        for asleep in idle:
            asleep.release()
