"""The executor contract: how the run loop hands task attempts to workers.

The run loop decides *what* runs and *when* (dependencies, retries, timeouts,
history); an executor only runs single attempts somewhere (inline, in threads, in
processes, on a cluster) and reports each outcome through a callback. Because
retries and timeouts live in the loop, every executor behaves the same way.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from pipekit.context import TaskContext, _current
from pipekit.errors import PipekitError

__all__ = [
    "Executor",
    "ExecutorFactory",
    "ExecutorSpec",
    "Job",
    "Outcome",
    "Report",
    "check_max_workers",
    "error_head",
    "format_error",
    "invoke",
    "invoke_captured",
    "invoke_with_timeout",
    "task_failed",
]


@dataclass(frozen=True, slots=True)
class Job:
    """One attempt at one task, ready to run.

    Attributes:
        key: unique within the run; identifies the attempt in the outcome.
        fn: the task's function.
        args: resolved positional arguments.
        kwargs: resolved keyword arguments.
        context: what :func:`pipekit.context` returns inside the attempt.
        timeout: seconds the attempt may take, or None.
    """

    key: int
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    context: TaskContext
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an attempt ended.

    Attributes:
        key: the :attr:`Job.key`.
        ok: True when the function returned.
        value: what it returned (when ``ok``).
        error: the exception it raised (when not ``ok``).
        error_text: ``"Type: message"`` followed by the traceback text (when not ``ok``).
    """

    key: int
    ok: bool
    value: Any = None
    error: BaseException | None = None
    error_text: str | None = None


Report = Callable[[Outcome], None]
"""The callback an executor calls, from any thread, once per finished job."""


def error_head(exc: BaseException) -> str:
    """Return ``"Type: message"`` for ``exc``; never raises.

    An exception whose ``str()`` raises reads ``"Type: <exception str() failed>"``, as
    :mod:`traceback` words it.
    """
    try:
        message = str(exc)
    except Exception:
        message = "<exception str() failed>"
    return f"{type(exc).__name__}: {message}"


def format_error(exc: BaseException) -> str:
    """Return ``"Type: message"``, a blank line, then the traceback text; never raises.

    A message or traceback that cannot be turned into text is replaced by a note, so
    that an odd exception fails its task instead of the run (or the worker process).
    """
    head = error_head(exc)
    try:
        tb = "".join(traceback.format_exception(exc)).rstrip()
    except Exception as problem:
        tb = f"(the traceback could not be formatted: {error_head(problem)})"
    return f"{head}\n\n{tb}"


def check_max_workers(max_workers: int | None) -> None:
    """Raise PipekitError unless ``max_workers`` is None or an int >= 1."""
    if max_workers is not None and (
        isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1
    ):
        raise PipekitError(
            f"max_workers={max_workers!r} must be an int >= 1, or None for the executor's default"
        )


def task_failed(exc: BaseException) -> bool:
    """Whether ``exc``, raised out of a task, is the task's own failure.

    Every ``Exception`` is, and so are ``SystemExit`` (a task calling ``sys.exit()``),
    ``GeneratorExit`` and ``asyncio.CancelledError`` (an event loop inside the task was
    cancelled). Any other ``BaseException``, ``KeyboardInterrupt`` first, is an
    interruption of the program, raised in the thread that runs the loop by a signal
    handler or a framework (pytest's outcomes, ``gevent.Timeout``): it stops the run.
    """
    if isinstance(exc, Exception | SystemExit | GeneratorExit):
        return True
    asyncio = sys.modules.get("asyncio")  # raised from asyncio only if it is imported
    return asyncio is not None and isinstance(exc, asyncio.CancelledError)


def invoke(job: Job) -> Outcome:
    """Run one job in the current thread with its task context set.

    An exception that is the task's failure (see :func:`task_failed`) becomes a failed
    :class:`Outcome`; any other (``KeyboardInterrupt``, an exception a signal handler
    raises) propagates, to stop the run.
    """
    token = _current.set(job.context)
    try:
        value = job.fn(*job.args, **job.kwargs)
    except BaseException as exc:
        if not task_failed(exc):
            raise
        return Outcome(job.key, False, None, exc, format_error(exc))
    finally:
        _current.reset(token)
    return Outcome(job.key, True, value)


def invoke_captured(job: Job) -> Outcome:
    """Run one job like :func:`invoke`, but return *every* exception as a failed outcome.

    For threads and processes other than the loop's, where no signal handler raises:
    whatever escapes the task there (a ``BaseException`` subclass of its own, say) was
    raised by the task itself, so it is the attempt's error, as :func:`task_failed`
    would have it were the task running in the loop's thread with no interruption
    to tell apart.
    """
    try:
        return invoke(job)
    except BaseException as exc:  # never let an attempt end without an outcome
        return Outcome(job.key, False, None, exc, format_error(exc))


def invoke_with_timeout(job: Job, timeout: float) -> Outcome:
    """Run ``job`` in a helper thread; after ``timeout`` seconds, give up on it.

    The outcome is the job's own (whatever it raised, see :func:`invoke_captured`), or a
    :class:`~pipekit.TaskTimeout` when it is still running: its thread is then
    abandoned, as the threads executor does.
    """
    import threading

    from pipekit.errors import TaskTimeout

    box: list[Outcome] = []
    helper = threading.Thread(
        target=lambda: box.append(invoke_captured(job)),
        name=f"pipekit-{job.context.task}",
        daemon=True,
    )
    helper.start()
    helper.join(timeout)
    if box:
        return box[0]
    exc = TaskTimeout(job.context.task, timeout)
    return Outcome(job.key, False, None, exc, format_error(exc))


@runtime_checkable
class Executor(Protocol):
    """Runs task attempts; the run loop is its only caller.

    A conforming executor:

    * after :meth:`start`, runs each submitted :class:`Job` exactly once and calls
      ``report`` with its :class:`Outcome` (from any thread; possibly before
      :meth:`submit` returns, as the sequential executor does);
    * runs up to :attr:`capacity` jobs at once (the loop never submits more);
    * on :meth:`cancel`, stops waiting for that job, frees its slot at once (a
      process worker is terminated; a thread is abandoned) and never reports it;
    * on :meth:`shutdown`, releases its workers; with ``cancel=True`` it kills
      whatever still runs.

    Optionally, an executor whose outcomes carry remote handles instead of values (Dask
    futures, so that data passed between tasks stays on the cluster) defines
    ``gather(value) -> Any``; the loop calls it only where it needs the value itself:
    to save a result for re-runs and to fill ``Run.tasks[...].result``. Handles passed
    to :meth:`submit` in ``Job.args``/``Job.kwargs`` are the executor's to resolve.
    An executor that sets ``inline_alone = True`` lets the loop run a job itself (with
    :func:`invoke`) when it is the only one that can run, saving two thread hand-offs;
    one that sets ``runs_inline = True`` (the sequential executor) lets the loop call
    every job without a timeout itself, as its :meth:`submit` would. One that defines
    ``run_quick() -> Outcome | None`` may run a queued job in the loop's thread where
    the loop would wait for outcomes (with no deadline or retry pending) and return
    its outcome instead of reporting it.
    """

    capacity: int

    def start(self, report: Report) -> None:
        """Get ready to run jobs; outcomes go to ``report``."""
        ...

    def submit(self, job: Job) -> None:
        """Run ``job``; its outcome is reported later (or before this returns)."""
        ...

    def cancel(self, key: int) -> None:
        """Give up on the job with this key (its timeout passed)."""
        ...

    def shutdown(self, *, cancel: bool = False) -> None:
        """Release workers; kill running jobs when ``cancel``."""
        ...


ExecutorFactory = Callable[[], Executor]
"""A class or a zero-argument callable that makes an executor: each run that is given
one makes its own executor with it (``executor=lambda: ThreadsExecutor(quick=0)``)."""

ExecutorSpec = str | Executor | ExecutorFactory
"""What ``executor=`` accepts: a name, an executor object, or an :data:`ExecutorFactory`."""
