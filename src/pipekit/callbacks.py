"""Callbacks: tell people how runs went, without ever changing how they went.

``on_failure``, ``on_success`` and ``on_retry`` on ``@task`` and ``@dag`` take a callable
or a list of them; each is called with an :class:`Event`. Task callbacks fire for that
task; a DAG's ``on_failure``/``on_success`` fire once per run when it ends (and once at
the end of a backfill, with a summary), its ``on_retry`` for every retry of any of its
tasks. Callbacks run in order on one background thread per run, so a slow webhook never
holds up the tasks, and all of them have been called when ``run()`` returns. A callback
that raises (even ``sys.exit()``) is logged (``callback_failed``), the next callbacks
still run, and it never changes the run's outcome.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipekit.errors import DefinitionError

__all__ = ["Callback", "Dispatcher", "Event", "callbacks"]


@dataclass(frozen=True, slots=True)
class Event:
    """What a callback is told.

    Attributes:
        kind: "failure", "success", "retry", or "backfill" (a backfill's summary).
        dag: the DAG's name.
        run_id: the run's id (None for a backfill summary).
        task: the task's id for task events, else None.
        params: the run's parameters (JSON values: dates as ISO strings).
        attempt: the attempt number for task events, else None.
        state: the task's or run's state ("failed", "success", "queued" for a retry), or
            for a backfill "success"/"failed".
        error: the error (first line of the task's error, or the failed tasks of a run).
        summary: the backfill's summary text, for "backfill" events.
        failed_tasks: for run events, the tasks that failed.
    """

    kind: str
    dag: str
    run_id: str | None
    task: str | None
    params: Mapping[str, Any]
    attempt: int | None
    state: str
    error: str | None = None
    summary: str | None = None
    failed_tasks: Sequence[str] = field(default_factory=tuple)

    @property
    def text(self) -> str:
        """A human-readable message naming the DAG, the params and the error."""
        params = ", ".join(f"{k}={v}" for k, v in self.params.items()) or "no params"
        if self.kind == "backfill":
            head = f"pipekit: backfill of {self.dag} {self.state}"
            return f"{head}\n{self.summary}" if self.summary else head
        where = f"task {self.task} of {self.dag}" if self.task else f"run of {self.dag}"
        if self.kind == "retry":
            what = f"{where} failed attempt {self.attempt} and will be retried"
        elif self.kind == "failure":
            what = f"{where} failed"
        else:
            what = f"{where} succeeded"
        lines = [f"pipekit: {what} ({params})", f"run {self.run_id}"]
        if self.failed_tasks:
            lines.append("failed tasks: " + ", ".join(self.failed_tasks))
        if self.error:
            lines.append(f"error: {self.error}")
        return "\n".join(lines)


Callback = Callable[[Event], object]
"""Anything callable with one :class:`Event`."""


def callbacks(value: Any, option: str) -> tuple[Callback, ...]:
    """Normalise an ``on_*`` option (None, a callable, or a list of callables).

    Raises:
        DefinitionError: an item is not callable.
    """
    if value is None:
        return ()
    items = list(value) if isinstance(value, list | tuple) else [value]
    for item in items:
        if not callable(item):
            raise DefinitionError(
                f"{option}={item!r} is not callable; pass a function taking an event, a "
                "pipekit.notify notifier, or a list of them"
            )
    return tuple(items)


def _name(target: Callback) -> str:
    """The callback's ``__name__``, else its repr (a repr that raises: its type's name)."""
    name = getattr(target, "__name__", None)
    if isinstance(name, str):
        return name
    try:
        return repr(target)
    except Exception:
        return type(target).__name__


def _describe(exc: BaseException) -> str:
    """``"Type: message"``; an exception whose str() raises is worded as traceback does."""
    try:
        message = str(exc)
    except Exception:
        message = "<exception str() failed>"
    return f"{type(exc).__name__}: {message}"


class Dispatcher:
    """Calls callbacks in order on one background thread; :meth:`close` waits for them."""

    def __init__(self, log: Any) -> None:
        self._log = log
        self._queue: queue.SimpleQueue[tuple[tuple[Callback, ...], Event] | None] | None = None
        self._thread: threading.Thread | None = None

    def emit(self, targets: tuple[Callback, ...], event: Event) -> None:
        """Queue ``event`` for each of ``targets`` (nothing happens without targets)."""
        if not targets:
            return
        if self._queue is None:
            self._queue = queue.SimpleQueue()
            self._thread = threading.Thread(
                target=self._work, name="pipekit-callbacks", daemon=True
            )
            self._thread.start()
        self._queue.put((targets, event))

    def _work(self) -> None:
        assert self._queue is not None
        while True:
            item = self._queue.get()
            if item is None:
                return
            targets, event = item
            for target in targets:
                try:
                    target(event)
                # A notifier never changes the run's outcome, nor stops this thread: even
                # sys.exit() in a callback is only logged (no signal ever reaches here).
                except BaseException as exc:
                    self._log.warning(
                        "callback_failed",
                        callback=_name(target),
                        kind=event.kind,
                        task=event.task,
                        error=_describe(exc),
                    )

    def close(self) -> None:
        """Wait until every queued callback has been called."""
        if self._queue is not None and self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._queue = None
            self._thread = None
