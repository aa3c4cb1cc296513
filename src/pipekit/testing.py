"""Helpers for testing pipelines and pipekit itself.

:class:`FakeClock` lets retry delays and schedules be tested without waiting::

    clock = FakeClock()
    run = etl.run(ds="2024-01-05", clock=clock, executor="sequential")
    assert clock.sleeps == [0.5, 1.0]
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

__all__ = ["FakeClock"]


class FakeClock:
    """A clock whose ``sleep`` advances time at once and records how long it was asked to wait.

    Args:
        start: the initial wall time (aware; default 2024-01-01 00:00 UTC).

    Attributes:
        sleeps: every duration passed to :meth:`sleep`, in order.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._start = start or datetime(2024, 1, 1, tzinfo=UTC)
        self._elapsed = 0.0
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        """Return the start time plus every second slept or advanced so far."""
        return self._start + timedelta(seconds=self._elapsed)

    def monotonic(self) -> float:
        """Return the seconds slept or advanced so far."""
        return self._elapsed

    def sleep(self, seconds: float) -> None:
        """Record ``seconds`` and advance time by it, without waiting."""
        with self._lock:
            self.sleeps.append(seconds)
            self._elapsed += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` without recording a sleep."""
        with self._lock:
            self._elapsed += seconds
