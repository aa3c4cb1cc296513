"""The exceptions pipekit raises, all under one root.

Catch :class:`PipekitError` to handle anything pipekit itself reports. Each message
names the bad value and says what to do about it; exceptions carry context as
attributes (``.run``, ``.task_id``, ``.param``) so callers need not parse messages.

The tree::

    PipekitError
    ├── DefinitionError            a task or DAG is declared wrongly
    │   ├── CycleError             the dependencies loop back on themselves
    │   └── DagFileError           a YAML DAG file breaks a rule (pipekit.declarative)
    ├── ParamError (TypeError)     a run parameter is missing, unknown or malformed
    ├── ContextError (RuntimeError)  pipekit.context() called outside a running task
    ├── StoreError                 the run-history store cannot be used
    ├── RunFailed                  a run ended with failed tasks (``.run`` holds it)
    ├── TaskTimeout (TimeoutError) an attempt ran past its ``timeout``
    ├── CommandFailed              a YAML sh task exited non-zero (pipekit.declarative)
    └── SqlFailed                  a YAML SQL task failed, rolled back (pipekit.declarative)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipekit.run import Run

__all__ = [
    "ContextError",
    "CycleError",
    "DefinitionError",
    "ParamError",
    "PipekitError",
    "RunFailed",
    "StoreError",
    "TaskTimeout",
]


class PipekitError(Exception):
    """Root of every error pipekit raises."""


class DefinitionError(PipekitError):
    """A task or DAG was declared in a way pipekit cannot run."""


class CycleError(DefinitionError):
    """The DAG's dependencies form a cycle.

    Attributes:
        cycle: the task ids on the cycle, in dependency order, first one repeated last.
    """

    def __init__(self, dag: str, cycle: Sequence[str]) -> None:
        self.dag = dag
        self.cycle = tuple(cycle)
        path = " -> ".join(self.cycle)
        super().__init__(
            f"DAG {dag!r} has a dependency cycle: {path}; "
            "remove one of these dependencies so that every task can run after its upstreams"
        )


class ParamError(PipekitError, TypeError):
    """A run parameter is missing, unknown, or cannot be converted to its declared type.

    Attributes:
        param: the name of the offending parameter.
    """

    def __init__(self, message: str, *, param: str) -> None:
        self.param = param
        super().__init__(message)


class ContextError(PipekitError, RuntimeError):
    """``pipekit.context()`` was called where no task is running."""


class StoreError(PipekitError):
    """The run-history store cannot be opened, read or written."""


class RunFailed(PipekitError):
    """A run ended in the "failed" state; ``.run`` is the :class:`pipekit.Run`."""

    def __init__(self, run: Run) -> None:
        self.run = run
        failed = [t.task_id for t in run.tasks.values() if t.state == "failed"]
        first = run.tasks[failed[0]].error if failed else run.error
        summary = (first or "").strip().splitlines()
        reason = summary[0] if summary else "interrupted"
        listed = ", ".join(failed) if failed else "no task (the run was interrupted)"
        super().__init__(
            f"run {run.id} of DAG {run.dag!r} failed: {listed} failed ({reason}); "
            f"fix the cause and re-run it, or inspect it with store.get_run({run.id!r})"
        )


class TaskTimeout(PipekitError, TimeoutError):
    """A task attempt ran longer than its ``timeout``; the run moved on without it.

    Attributes:
        task_id: the task whose attempt timed out.
        timeout: the limit, in seconds.
    """

    def __init__(self, task_id: str, timeout: float) -> None:
        self.task_id = task_id
        self.timeout = timeout
        super().__init__(
            f"task {task_id!r} timed out after {timeout:g}s; "
            "raise its timeout= or make the work smaller"
        )

    def __reduce__(self) -> tuple[type[TaskTimeout], tuple[str, float]]:
        """Pickle with the constructor's arguments (exceptions cross process boundaries)."""
        return (TaskTimeout, (self.task_id, self.timeout))
