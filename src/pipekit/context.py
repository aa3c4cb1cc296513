"""What a running task can know about itself: :func:`context` and :func:`get_logger`.

The executor sets a context variable around each attempt, in whatever thread or
process runs it, so tasks need no extra arguments to find their run id or attempt.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from pipekit._fastinit import fast_init
from pipekit.errors import ContextError

__all__ = ["TaskContext", "context", "get_logger"]


@fast_init
@dataclass(frozen=True, slots=True)
class TaskContext:
    """The identity of the running task attempt.

    Attributes:
        run_id: the run's id.
        dag: the DAG's name.
        task: the task's id.
        attempt: 1 for the first attempt, 2 for the first retry, ...
        params: the run's parameters.
        output: the task's rendered ``output=`` path, or None.
    """

    run_id: str
    dag: str
    task: str
    attempt: int
    params: Mapping[str, Any]
    output: str | None = None


_current: ContextVar[TaskContext | None] = ContextVar("pipekit_task_context", default=None)


def context() -> TaskContext:
    """Return the :class:`TaskContext` of the task running in this thread or process.

    Raises:
        ContextError: when called outside a running task (in a DAG body, or in a test
            that calls the task function directly).

    Example:
        >>> @task
        ... def load(rows):
        ...     ctx = pipekit.context()
        ...     print(ctx.run_id, ctx.attempt)
    """
    ctx = _current.get()
    if ctx is None:
        raise ContextError(
            "pipekit.context() was called outside a running task; call it from inside a "
            "@task function while a DAG runs (not in the DAG body or a direct call)"
        )
    return ctx


def get_logger() -> Any:
    """Return a structlog logger; inside a task it is bound to dag, run_id, task and attempt.

    Outside a task it is pipekit's plain logger, so a task function called directly in
    a unit test can still log.
    """
    import structlog

    log = structlog.get_logger("pipekit")
    ctx = _current.get()
    if ctx is None:
        return log
    return log.bind(dag=ctx.dag, run_id=ctx.run_id, task=ctx.task, attempt=ctx.attempt)
