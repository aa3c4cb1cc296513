"""Group commit: the run loop's history writes, batched.

Committing every state change costs a disk round trip (60-100 us with SQLite here),
more than a no-op task itself. The run loop therefore hands its changes to a
:class:`GroupCommit`, which applies them in order, one transaction per batch. The
guarantee (stated in the README): each run's changes are applied in the order they
happened, never out of order, and each is committed at most ``max_delay`` seconds
(50 ms by default) after it happened, so a process killed at any moment loses at most
the last 50 ms of state changes. A task whose success was lost that way runs again on
re-run (at-least-once; idempotent tasks make that safe). ``run()`` flushes before it
returns, so a finished run is fully recorded.

Who writes. A busy loop writes its own batches: when the oldest queued change is a
fifth of ``max_delay`` old, the next :meth:`GroupCommit.record` commits the batch in
the caller's thread. A writer thread would do no better: the database driver drops the
GIL around every statement, and a thread that drops it behind a busy loop gets it back
only after the interpreter's switch interval (5 ms), so it would crawl. When the loop
is blocked instead (inside a long task, or waiting for workers), the writer's own
flusher thread commits what is due; it is started on demand and ends when idle.

Failures. A batch that cannot be committed is applied again run by run, so that one
run's bad change or a store hiccup during one run stops only the runs it concerns:
their later changes are refused (:meth:`GroupCommit.record` raises the error), the
other runs' history goes on. A Ctrl-C that arrives during a commit the loop's thread
is making is held until the commit ends, so a transaction is never half-abandoned.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipekit.stores.base import Change, Store

__all__ = ["GroupCommit"]

_IDLE = 2.0
"""Seconds a flusher thread with nothing to do waits before it ends."""


class _HeldInterrupt:
    """In the main thread, hold a SIGINT until the block ends, then deliver it."""

    def __init__(self) -> None:
        self.previous: Any = None
        self.caught: tuple[int, Any] | None = None
        self.active = False

    def _hold(self, signum: int, frame: Any) -> None:
        self.caught = (signum, frame)

    def __enter__(self) -> _HeldInterrupt:
        if threading.current_thread() is threading.main_thread():
            previous = signal.getsignal(signal.SIGINT)
            if previous is not None:  # None: a handler set outside Python, left alone
                try:
                    self.previous = signal.signal(signal.SIGINT, self._hold)
                    self.active = True
                except ValueError:  # not the main interpreter
                    pass
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.active:
            return
        signal.signal(signal.SIGINT, self.previous)
        if self.caught is not None:
            if callable(self.previous):
                self.previous(*self.caught)  # default_int_handler raises KeyboardInterrupt
            elif self.previous == signal.SIG_DFL:
                signal.raise_signal(signal.SIGINT)


class GroupCommit:
    """Applies changes to ``store`` in order, batched, each within ``max_delay`` seconds.

    Thread-safe: several runs (a backfill's dates) may share one.

    Args:
        store: the history store; its ``record`` is called by one thread at a time,
            from the recording thread or the writer's flusher thread.
        max_delay: the longest a change waits before its batch is committed.
        max_batch: a batch this large is committed at once (bounds each commit's time).
    """

    def __init__(self, store: Store, *, max_delay: float = 0.05, max_batch: int = 5000) -> None:
        self.store = store
        self.max_delay = max_delay
        self.max_batch = max_batch
        # Commit well before the promise: room for a commit, and for a flusher that waits
        # on the GIL behind a task busy computing.
        self._gather = max_delay / 5
        self._pending: list[Change] = []
        self._since = 0.0  # when the oldest pending change was queued
        self._last = 0.0  # when record() was last called
        self._errors: dict[str, BaseException] = {}  # run id -> why its history stopped
        self._lock = threading.Lock()  # guards _pending, _since and _errors
        self._writing = threading.Lock()  # one batch is written at a time, in order
        self._wake = threading.Condition(threading.Lock())  # guards the fields below
        self._due: float | None = None  # when the flusher should look at the queue
        self._thread: threading.Thread | None = None
        self._closed = False

    # -- recording -----------------------------------------------------------------

    def record(self, changes: Sequence[Change]) -> None:
        """Queue ``changes`` (in order); commit the batch here if it is due.

        Raises:
            Exception: the error that stopped the history of a run these changes
                belong to (a batch of it could not be committed).
        """
        if self._errors:
            self._raise_for(changes)
        now = self._last = time.monotonic()
        with self._lock:
            pending = self._pending
            first = not pending
            if first:
                self._since = now
            pending.extend(changes)
            due = len(pending) >= self.max_batch or now - self._since >= self._gather
        if due:
            with self._writing:
                self._commit()
        elif first:
            self._schedule(now + self._gather)

    def _raise_for(self, changes: Sequence[Change]) -> None:
        with self._lock:
            for change in changes:
                error = self._errors.get(change.run_id)
                if error is not None:
                    raise error

    def _commit(self) -> None:
        """Write everything queued (the caller holds ``_writing``)."""
        with self._lock:
            batch, self._pending = self._pending, []
            if self._errors:  # a stopped run's history must not go on with a hole in it
                batch = [c for c in batch if c.run_id not in self._errors]
        if not batch:
            return
        with _HeldInterrupt():
            try:
                self.store.record(batch)
            except Exception as exc:
                self._isolate(batch, exc)
            except BaseException:  # rolled back: keep the batch for whoever goes on
                with self._lock:
                    self._pending[:0] = batch
                raise

    def _isolate(self, batch: list[Change], error: Exception) -> None:
        """The batch failed: apply it run by run; remember each run that still fails."""
        runs = list(dict.fromkeys(c.run_id for c in batch))
        failed: dict[str, BaseException] = {}
        if len(runs) == 1:
            failed[runs[0]] = error
        else:
            for run_id in runs:
                try:
                    self.store.record([c for c in batch if c.run_id == run_id])
                except Exception as exc:
                    failed[run_id] = exc
        with self._lock:
            self._errors.update(failed)

    # -- the flusher thread --------------------------------------------------------

    def _schedule(self, when: float) -> None:
        """Make the flusher thread look at the queue at monotonic time ``when``."""
        with self._wake:
            if self._due is None or when < self._due:
                self._due = when
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._flusher, name="pipekit-history", daemon=True
                )
                self._thread.start()
            else:
                self._wake.notify()

    def _flusher(self) -> None:
        wake = self._wake
        with wake:
            while not self._closed:
                if self._due is None:
                    if not wake.wait(_IDLE) and self._due is None:
                        break  # idle: end; _schedule starts another when needed
                    continue
                wait = self._due - time.monotonic()
                if wait > 0:
                    wake.wait(wait)
                    continue
                self._due = None
                wake.release()
                try:
                    self._flush_due()
                finally:
                    wake.acquire()
            self._thread = None

    def _flush_due(self) -> None:
        """Commit what is queued, unless the loop is active.

        A loop that recorded a change moments ago will commit on its own when the batch
        is due; written from here, behind that loop's hold on the GIL, the same batch
        would take many switch intervals. So this looks again a little later instead:
        a loop that stopped recording (inside a long task) leaves its changes to this
        thread within two ``max_delay / 5``.
        """
        now = time.monotonic()
        quiet = now - self._last
        if quiet < self._gather / 2 or not self._writing.acquire(blocking=False):
            with self._lock:
                waiting = bool(self._pending)
            if waiting:
                self._schedule(now + max(self._gather - quiet, self._gather / 4))
            return
        try:
            self._commit()
        finally:
            self._writing.release()

    # -- flushing ------------------------------------------------------------------

    def errors(self) -> dict[str, BaseException]:
        """Runs whose history stopped, and why (a copy)."""
        with self._lock:
            return dict(self._errors)

    def flush(self, run_id: str | None = None) -> None:
        """Commit every queued change now, in this thread.

        Raises:
            Exception: the error that stopped run ``run_id``'s history (any run's, when
                None), even if it happened in the flusher thread.
        """
        with self._writing:
            self._commit()
        with self._lock:
            if run_id is not None:
                error = self._errors.get(run_id)
            else:
                error = next(iter(self._errors.values()), None)
        if error is not None:
            raise error

    def close(self) -> None:
        """Commit everything queued and stop the flusher thread; errors are kept, not raised.

        (A caller that must know calls :meth:`flush` first, or reads :meth:`errors`.)
        """
        with self._writing:
            self._commit()
        with self._wake:
            self._closed = True
            self._wake.notify()
