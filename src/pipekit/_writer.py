"""Group commit: the run loop's history writes, batched on a writer thread.

Committing every state change costs a disk round trip (60-100 us with SQLite here),
more than a no-op task itself. The run loop therefore hands its changes to a
:class:`GroupCommit`, which applies them on one background thread, in order, in one
transaction per batch. The guarantee (stated in the README): changes are applied in
the order they happened, never out of order, and each is committed at most
``max_delay`` seconds (50 ms by default) after it happened, so a process killed at any
moment loses at most the last 50 ms of state changes. A task whose success was lost
that way runs again on re-run (at-least-once; idempotent tasks make that safe). The
loop flushes before it returns, so a finished ``run()`` is fully recorded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipekit.stores.base import Change, Store

__all__ = ["GroupCommit"]


class GroupCommit:
    """Applies changes to ``store`` in order, batched, within ``max_delay`` seconds.

    Args:
        store: the history store; its ``record`` is called from the writer thread only.
        max_delay: the longest a change waits before its batch is committed.
        max_batch: the most changes in one transaction (bounds each commit's time).
        max_pending: beyond this many waiting changes, :meth:`record` blocks until the
            writer catches up (a slow store slows the run instead of growing memory).
    """

    def __init__(
        self,
        store: Store,
        *,
        max_delay: float = 0.05,
        max_batch: int = 5000,
        max_pending: int = 50_000,
    ) -> None:
        self.store = store
        self.max_delay = max_delay
        self.max_batch = max_batch
        self.max_pending = max_pending
        self._pending: list[Change] = []
        self._cond = threading.Condition()
        self._closed = False
        self._error: BaseException | None = None
        self._busy = False
        self._urgent = False
        # When the oldest change not yet committed was queued (None: all committed).
        self._pending_since: float | None = None
        self._inflight_since: float | None = None
        # A loop that runs ahead of a starved writer (the GIL) waits for it past this age.
        self._stale = max_delay * 0.6
        # Commit a little sooner than the promise, leaving room for the commit itself.
        self._gather = max_delay / 5
        self._thread = threading.Thread(target=self._run, name="pipekit-history", daemon=True)
        self._thread.start()

    def _oldest(self) -> float | None:
        return self._inflight_since if self._busy else self._pending_since

    def record(self, changes: Sequence[Change]) -> None:
        """Queue ``changes`` (in order); raise the writer's error if an earlier batch failed.

        If the oldest uncommitted change is getting close to ``max_delay`` (the writer
        is starved of the GIL by a busy loop, or the store is slow), this waits until
        everything queued is committed: the 50 ms promise holds under load too.
        """
        now = time.monotonic()
        with self._cond:
            if self._error is not None:
                raise self._error
            oldest = self._oldest()
            if (oldest is not None and now - oldest > self._stale) or len(
                self._pending
            ) >= self.max_pending:
                self._urgent = True
                self._cond.notify_all()
                self._cond.wait_for(
                    lambda: (not self._pending and not self._busy) or self._error is not None
                )
                self._urgent = False
                if self._error is not None:
                    raise self._error
            wake = not self._pending
            if wake:
                self._pending_since = now
            self._pending.extend(changes)
            if wake:
                self._cond.notify_all()

    def _run(self) -> None:
        cond = self._cond
        while True:
            with cond:
                cond.wait_for(lambda: self._pending or self._closed)
                if not self._pending and self._closed:
                    return
            # Let a few more changes arrive, then write them together.
            with cond:
                cond.wait_for(
                    lambda: self._closed or self._urgent or len(self._pending) >= self.max_batch,
                    timeout=self._gather,
                )
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                self._busy = True
                self._inflight_since = self._pending_since
                self._pending_since = time.monotonic() if self._pending else None
            try:
                self.store.record(batch)
            except BaseException as exc:  # surfaced to the loop on its next record/flush
                with cond:
                    self._error = exc
                    self._busy = False
                    self._pending.clear()
                    cond.notify_all()
                return
            with cond:
                self._busy = False
                cond.notify_all()

    def flush(self) -> None:
        """Wait until every queued change is committed; raise the writer's error if any."""
        with self._cond:
            self._urgent = True
            self._cond.notify_all()
            self._cond.wait_for(
                lambda: (not self._pending and not self._busy) or self._error is not None
            )
            self._urgent = False
            if self._error is not None:
                raise self._error

    def close(self) -> None:
        """Flush, then stop the writer thread."""
        try:
            self.flush()
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()
            self._thread.join()
