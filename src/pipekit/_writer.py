"""Group commit: the run loop's history writes, batched.

Committing every state change costs a disk round trip (60-100 us with SQLite here),
more than a no-op task itself. The run loop therefore hands its changes to a
:class:`GroupCommit`, which applies them in order, one transaction per batch. The
guarantee (stated in the README): changes are applied in the order they happened,
never out of order, and each is committed at most ``max_delay`` seconds (50 ms by
default) after it happened, so a process killed at any moment loses at most the last
50 ms of state changes. A task whose success was lost that way runs again on re-run
(at-least-once; idempotent tasks make that safe). The loop flushes before it returns,
so a finished ``run()`` is fully recorded.

Who writes. A busy loop writes its own batches: when the oldest queued change is a
fifth of ``max_delay`` old, the next :meth:`GroupCommit.record` commits the batch in
the caller's thread. A writer thread would do no better: the database driver drops the
GIL around every statement, and a thread that drops it behind a busy loop gets it back
only after the interpreter's switch interval (5 ms), so it would crawl. When the loop
is blocked instead (inside a long task, or waiting for workers), one process-wide
flusher thread (:class:`_Flusher`) commits what is due. It sleeps while nothing is
queued, so it costs nothing between runs.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipekit.stores.base import Change, Store

__all__ = ["GroupCommit"]


class _Flusher:
    """One daemon thread that commits each writer's batch when it falls due."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._due: list[tuple[float, int, GroupCommit]] = []
        self._seq = 0
        self._thread: threading.Thread | None = None

    def schedule(self, when: float, writer: GroupCommit) -> None:
        """Make ``writer`` flush what it holds at monotonic time ``when`` (or soon after)."""
        with self._cond:
            self._seq += 1
            earliest = not self._due or when < self._due[0][0]
            heapq.heappush(self._due, (when, self._seq, writer))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="pipekit-history", daemon=True
                )
                self._thread.start()
            elif earliest:
                self._cond.notify()

    def _run(self) -> None:
        cond = self._cond
        with cond:
            while True:
                if not self._due:
                    cond.wait()
                    continue
                when, _, writer = self._due[0]
                wait = when - time.monotonic()
                if wait > 0:
                    cond.wait(wait)
                    continue
                heapq.heappop(self._due)
                cond.release()
                try:
                    writer.flush_due()
                finally:
                    cond.acquire()


_FLUSHER = _Flusher()


class GroupCommit:
    """Applies changes to ``store`` in order, batched, each within ``max_delay`` seconds.

    Args:
        store: the history store; its ``record`` is called by one thread at a time.
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
        self._lock = threading.Lock()  # guards _pending and _since
        self._writing = threading.Lock()  # one batch is written at a time, in order
        self._error: BaseException | None = None

    def record(self, changes: Sequence[Change]) -> None:
        """Queue ``changes`` (in order); commit the batch here if it is due.

        Raises:
            Exception: the error of an earlier batch that could not be committed (the
                run cannot be recorded any further), or of this call's own commit.
        """
        if self._error is not None:
            raise self._error
        now = self._last = time.monotonic()
        with self._lock:
            pending = self._pending
            first = not pending
            if first:
                self._since = now
            pending.extend(changes)
            due = len(pending) >= self.max_batch or now - self._since >= self._gather
        if due:
            self.flush()
        elif first:
            _FLUSHER.schedule(now + self._gather, self)

    def _write(self) -> None:
        """Commit everything queued (the caller holds ``_writing``)."""
        with self._lock:
            batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            self.store.record(batch)
        except BaseException as exc:
            self._error = exc
            raise

    def flush_due(self) -> None:
        """The flusher's call: commit what is queued, unless the loop is active.

        A loop that recorded a change moments ago will commit on its own when the batch
        is due; written from here, behind that loop's hold on the GIL, the same batch
        would take many switch intervals. So this looks again a little later instead:
        a loop that stopped recording (inside a long task) leaves its changes to this
        thread within two ``max_delay / 5``. An error is kept for the loop to raise.
        """
        if self._error is not None:
            return
        now = time.monotonic()
        quiet = now - self._last
        if quiet < self._gather / 2 or not self._writing.acquire(blocking=False):
            with self._lock:
                waiting = bool(self._pending)
            if waiting:
                _FLUSHER.schedule(now + max(self._gather - quiet, self._gather / 4), self)
            return
        try:
            self._write()
        except Exception:  # kept in _error: the loop raises it on its next call
            return
        finally:
            self._writing.release()

    def flush(self) -> None:
        """Commit every queued change now, in this thread; raise a writer's error if any."""
        if self._error is not None:
            raise self._error
        with self._writing:
            self._write()

    def close(self) -> None:
        """Commit everything queued (nothing to stop: the flusher thread is shared)."""
        self.flush()
