"""The processes executor: attempts run in worker processes, for CPU-bound Python code.

Each worker is a fresh ``python -m pipekit.executors._procworker`` process (not a
fork, so it is safe in threaded programs, and not multiprocessing's spawn, so a
script without an ``if __name__ == "__main__"`` guard works too). Tasks, arguments
and results cross as cloudpickle frames over pipes; functions defined in
``__main__`` or in closures travel by value, ``@task`` functions of importable
modules by reference (the worker imports their module). A timed-out attempt's worker is
terminated and replaced; a worker that dies fails its attempt.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

from pipekit.errors import PipekitError
from pipekit.executors._byref import dumps_job
from pipekit.executors._wire import read_frame, write_frame
from pipekit.executors.base import Job, Outcome, Report, check_max_workers, error_head

__all__ = ["ProcessesExecutor"]


@dataclass(eq=False)
class _Worker:
    proc: subprocess.Popen[bytes]
    wfd: int
    rfd: int
    job: int | None = None
    report: Report | None = None  # where the outcome of ``job`` goes: the run that sent it
    cancelled: bool = False  # its job timed out and it was killed: it reports nothing more
    retired: bool = False  # shut down with the run that used it: never serves another
    dead: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    write_open: bool = True

    def close_write(self) -> None:
        """Close the pipe to the worker once (it then exits when idle)."""
        with self.lock:
            if self.write_open:
                self.write_open = False
                os.close(self.wfd)


class ProcessesExecutor:
    """Runs up to ``max_workers`` attempts at once, each in its own worker process."""

    def __init__(self, max_workers: int | None = None) -> None:
        check_max_workers(max_workers)
        self.capacity = max_workers or os.cpu_count() or 1
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._busy: dict[int, _Worker] = {}
        self._all: set[_Worker] = set()
        self._report: Report | None = None

    def start(self, report: Report) -> None:
        """Remember where outcomes go; workers start as work arrives.

        Called again for each run when one executor serves several runs in turn (a
        backfill's dates): its idle workers then serve the next run. After
        :meth:`shutdown` the workers of earlier runs are retired: each reports only
        to the run that sent its job, so they never touch the next run.
        """
        self._report = report

    def _spawn(self) -> _Worker:
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pipekit.executors._procworker",
                str(to_child_r),
                str(from_child_w),
            ],
            pass_fds=(to_child_r, from_child_w),
            stdin=subprocess.DEVNULL,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        worker = _Worker(proc, to_child_w, from_child_r)
        write_frame(worker.wfd, pickle.dumps(list(sys.path)))
        threading.Thread(
            target=self._listen, args=(worker,), name="pipekit-proc-reader", daemon=True
        ).start()
        self._all.add(worker)
        return worker

    def _listen(self, worker: _Worker) -> None:
        while True:
            try:
                frame = read_frame(worker.rfd)
            except OSError:
                frame = None
            if frame is None:
                break
            try:
                outcome: Outcome = pickle.loads(frame)
            except Exception as load_error:  # pickles, but cannot be rebuilt here
                key = worker.job
                if key is None:
                    continue
                err = PipekitError(
                    "the task's outcome could not be read back from the worker process "
                    f"({error_head(load_error)}); return and raise "
                    "picklable objects"
                )
                outcome = Outcome(key, False, None, err, f"PipekitError: {err}")
            with self._lock:
                if self._busy.get(outcome.key) is worker:
                    del self._busy[outcome.key]
                # The run that sent the job, not a later one; decided here, under the
                # lock: once idle again, the worker may take (and lose) another job.
                report = None if worker.cancelled else worker.report
                worker.job = worker.report = None
                if not (worker.retired or worker.cancelled):
                    self._idle.append(worker)
            if report is not None:
                report(outcome)
        # The pipe closed: the worker exited, was killed, or is being shut down.
        code = worker.proc.wait()
        with self._lock:
            worker.dead = True
            self._all.discard(worker)
            if worker in self._idle:
                self._idle.remove(worker)
            key, report = worker.job, worker.report
            lost = key is not None and not worker.cancelled and not worker.retired
            if key is not None and self._busy.get(key) is worker:
                del self._busy[key]
        os.close(worker.rfd)
        worker.close_write()
        if lost and key is not None and report is not None:
            exc = PipekitError(
                f"the worker process running this attempt died (exit code {code}); "
                "it may have run out of memory or been killed"
            )
            report(Outcome(key, False, None, exc, f"WorkerDied: {exc}"))

    def submit(self, job: Job) -> None:
        """Send ``job`` to an idle worker, starting one if the pool is not full."""
        report = self._report
        assert report is not None
        try:
            payload = pickle.dumps((job.key, job.context.task, dumps_job(job)))
        except Exception as exc:
            err = PipekitError(
                f"task {job.context.task!r} or its arguments cannot be sent to a worker process "
                f"({error_head(exc)}); pass picklable values or use the threads executor"
            )
            report(Outcome(job.key, False, None, err, f"PipekitError: {err}"))
            return
        with self._lock:
            worker = self._idle.pop() if self._idle else self._spawn()
            worker.job = job.key
            worker.report = report
            self._busy[job.key] = worker
        with worker.lock:
            sent = worker.write_open
            if sent:
                try:
                    write_frame(worker.wfd, payload)
                except OSError:
                    sent = False
        if not sent:  # the worker died meanwhile (a duplicate report of the key is ignored)
            err = PipekitError("the worker process died before it could take this attempt")
            report(Outcome(job.key, False, None, err, f"WorkerDied: {err}"))

    def cancel(self, key: int) -> None:
        """Terminate the worker running ``key``; a new one starts on the next submit."""
        with self._lock:
            worker = self._busy.pop(key, None)
            if worker is not None:
                worker.cancelled = True
        if worker is not None:
            _kill(worker.proc)

    def shutdown(self, *, cancel: bool = False) -> None:
        """Close the workers' pipes; with ``cancel``, kill busy ones and wait for all.

        Idle workers exit on their own once their pipe closes, and their reader threads
        reap them, so a run does not wait for interpreters to tear down.
        """
        with self._lock:
            workers = list(self._all)
            for w in workers:
                w.retired = True  # its reader no longer pools it or reports it lost
            self._all.clear()
            self._busy.clear()
            self._idle.clear()
        for w in workers:
            if cancel and w.job is not None:
                _kill(w.proc)
            w.close_write()
        if not cancel:
            return
        for w in workers:
            try:
                w.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                _kill(w.proc)
                w.proc.wait()


def _kill(proc: subprocess.Popen[Any]) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
