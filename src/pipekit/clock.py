"""Time, injected.

The run loop reads wall time for the history, monotonic time for deadlines, and
sleeps between retries, all through a :class:`Clock`. Tests pass
:class:`pipekit.testing.FakeClock`, which advances instead of waiting.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """Where the run loop gets time from.

    ``now()`` returns an aware UTC datetime for the history; ``monotonic()`` seconds
    for deadlines and retry timers; ``sleep(seconds)`` waits (or pretends to).
    """

    def now(self) -> datetime:
        """Return the current time as an aware UTC datetime."""
        ...

    def monotonic(self) -> float:
        """Return seconds from an arbitrary origin that never goes backwards."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        ...


class SystemClock:
    """The real clock: ``datetime.now(UTC)``, ``time.monotonic``, ``time.sleep``."""

    __slots__ = ()

    def now(self) -> datetime:
        """Return the current time in UTC."""
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """Return :func:`time.monotonic`."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """Sleep for real."""
        if seconds > 0:
            time.sleep(seconds)
