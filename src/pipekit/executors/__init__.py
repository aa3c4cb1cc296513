"""Executors: where task attempts run. Pick one by name or pass an object.

``"sequential"`` (inline, one at a time), ``"threads"`` (the default; a pool of
threads) and ``"processes"`` (worker processes, for CPU-bound Python). Each is an
implementation of :class:`Executor`; the run loop talks to nothing else.
"""

from __future__ import annotations

from pipekit.errors import PipekitError
from pipekit.executors.base import Executor, Job, Outcome
from pipekit.executors.processes import ProcessesExecutor
from pipekit.executors.sequential import SequentialExecutor
from pipekit.executors.threads import ThreadsExecutor

__all__ = [
    "Executor",
    "Job",
    "Outcome",
    "ProcessesExecutor",
    "SequentialExecutor",
    "ThreadsExecutor",
    "make_executor",
]

_BY_NAME: dict[str, type[SequentialExecutor | ThreadsExecutor | ProcessesExecutor]] = {
    "sequential": SequentialExecutor,
    "threads": ThreadsExecutor,
    "processes": ProcessesExecutor,
}


def make_executor(executor: str | Executor, max_workers: int | None) -> Executor:
    """Return an executor for a name ("sequential", "threads", "processes") or the object itself.

    Raises:
        PipekitError: for an unknown name, or ``max_workers`` given with an object.
    """
    if isinstance(executor, str):
        cls = _BY_NAME.get(executor)
        if cls is None:
            raise PipekitError(
                f"executor={executor!r} is not known; use one of {', '.join(_BY_NAME)} "
                "or pass an executor object"
            )
        return cls(max_workers)
    if not isinstance(executor, Executor):
        raise PipekitError(
            f"executor={executor!r} is neither a name ({', '.join(_BY_NAME)}) nor an object with "
            "the pipekit.executors.Executor interface"
        )
    if max_workers is not None:
        raise PipekitError(
            "max_workers applies to executors given by name; set it on the executor object instead"
        )
    return executor
