"""Retry policies, built on tenacity.

A :class:`Retry` is a small frozen value; the run loop asks it, after each failed
attempt, whether to try again and after how long. The decision is made by tenacity's
composable strategies (``stop_after_attempt``, ``wait_exponential`` plus
``wait_random``, ``retry_if_exception_type``) evaluated on a ``RetryCallState``, so
waiting is left to the run loop and its injected clock instead of blocking a worker.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from pipekit.errors import DefinitionError

__all__ = ["NO_RETRY", "Retry"]


def _check_number(name: str, value: float, *, minimum: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DefinitionError(f"{name}={value!r} is not a number; give a finite number of seconds")
    if value < minimum:
        raise DefinitionError(f"{name}={value!r} is below {minimum:g}; give a value >= {minimum:g}")


@dataclass(frozen=True, slots=True)
class Retry:
    """How often and how patiently to retry a task.

    Args:
        attempts: total attempts, first included (``retries=2`` is ``attempts=3``).
        delay: seconds before the first retry.
        backoff: multiplier per retry: 1 keeps the delay fixed, 2 doubles it each time.
        max_delay: cap on any single delay, in seconds (None: no cap).
        jitter: up to this many random seconds added to each delay, so that many
            tasks failing together do not retry in lockstep.
        on: exception types that may be retried; any other error fails the task at
            once (an authentication error that retrying cannot fix, say).

    Example:
        >>> Retry(attempts=3, delay=1, backoff=2).delays()
        [1.0, 2.0]
    """

    attempts: int = 1
    delay: float = 0.0
    backoff: float = 1.0
    max_delay: float | None = None
    jitter: float = 0.0
    on: tuple[type[BaseException], ...] = field(default=(Exception,))

    def __post_init__(self) -> None:
        """Validate every field, naming the bad one."""
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise DefinitionError(f"attempts={self.attempts!r} is not an int; give a count >= 1")
        if self.attempts < 1:
            raise DefinitionError(
                f"attempts={self.attempts!r} must be >= 1 (it counts the first attempt); "
                "use attempts=1 for no retry"
            )
        _check_number("retry_delay", self.delay, minimum=0)
        _check_number("retry_backoff", self.backoff, minimum=1)
        _check_number("retry_jitter", self.jitter, minimum=0)
        if self.max_delay is not None:
            _check_number("retry_max_delay", self.max_delay, minimum=0)
        on = self.on
        if isinstance(on, type):
            on = (on,)
            object.__setattr__(self, "on", on)
        if (
            not isinstance(on, tuple)
            or not on
            or not all(isinstance(t, type) and issubclass(t, BaseException) for t in on)
        ):
            raise DefinitionError(
                f"retry_on={self.on!r} must be an exception class or a tuple of them, "
                "such as (ConnectionError, TimeoutError)"
            )

    @property
    def retries(self) -> int:
        """Retries after the first attempt."""
        return self.attempts - 1

    def _strategies(self) -> tuple[Any, Any, Any]:
        import tenacity

        stop = tenacity.stop_after_attempt(self.attempts)
        wait: Any = tenacity.wait_exponential(
            multiplier=self.delay,
            exp_base=self.backoff,
            min=0,
            max=self.max_delay if self.max_delay is not None else math.inf,
        )
        if self.jitter:
            wait = wait + tenacity.wait_random(0, self.jitter)
        retry = tenacity.retry_if_exception_type(self.on)
        return stop, wait, retry

    def next_delay(self, attempt: int, error: BaseException) -> float | None:
        """After failed attempt number ``attempt`` with ``error``, the seconds to wait, or None.

        None means: do not retry (attempts used up, or ``error`` is not retryable).
        """
        if attempt >= self.attempts:
            return None
        import tenacity

        stop, wait, retry = self._strategies()
        retrying = tenacity.Retrying(stop=stop, wait=wait, retry=retry)
        state = tenacity.RetryCallState(retry_object=retrying, fn=None, args=(), kwargs={})
        state.attempt_number = attempt
        state.set_exception((type(error), error, error.__traceback__))
        if not retry(state) or stop(state):
            return None
        return float(wait(state))

    def delays(self) -> list[float]:
        """The waits before each retry, ignoring jitter (for docs and checks)."""
        out: list[float] = []
        for n in range(1, self.attempts):
            raw = self.delay * self.backoff ** (n - 1)
            out.append(float(min(raw, self.max_delay) if self.max_delay is not None else raw))
        return out


NO_RETRY = Retry()
"""The default policy: one attempt, no retry."""
