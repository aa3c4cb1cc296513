"""The states of runs and task runs.

States are a :class:`enum.StrEnum`, so they are stored as plain strings and compare
equal to them: ``State.SUCCESS == "success"``.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["FINISHED", "State"]


class State(StrEnum):
    """The state of a run or of one task in a run.

    A task moves ``queued -> running -> success | failed``; a failed attempt that
    will be retried goes back to ``queued``. Tasks downstream of a failure become
    ``upstream_failed`` and never run; tasks downstream of a skip (``raise
    pipekit.Skip``) become ``skipped``.
    """

    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    UPSTREAM_FAILED = "upstream_failed"
    SKIPPED = "skipped"


FINISHED: frozenset[State] = frozenset(
    {State.SUCCESS, State.FAILED, State.UPSTREAM_FAILED, State.SKIPPED}
)
"""States a task never leaves within one run."""
