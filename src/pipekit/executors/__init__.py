"""Executors: where task attempts run. Pick one by name or pass an object.

``"sequential"`` (inline, one at a time), ``"threads"`` (the default; a pool of
threads), ``"processes"`` (worker processes, for CPU-bound Python) and ``"dask"`` (a
dask.distributed cluster: ``$PIPEKIT_DASK_ADDRESS``, else a LocalCluster; needs
``pipekit[dask]``). Each is an implementation of :class:`Executor`; the run loop talks
to nothing else. :class:`DaskExecutor` is imported on first use, so importing this
package never imports dask.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipekit.errors import PipekitError
from pipekit.executors.base import Executor, Job, Outcome
from pipekit.executors.sequential import SequentialExecutor
from pipekit.executors.threads import ThreadsExecutor

if TYPE_CHECKING:
    from pipekit.executors.dask import DaskExecutor
    from pipekit.executors.processes import ProcessesExecutor

__all__ = [
    "DaskExecutor",
    "Executor",
    "Job",
    "Outcome",
    "ProcessesExecutor",
    "SequentialExecutor",
    "ThreadsExecutor",
    "make_executor",
]

_BY_NAME: dict[str, type[SequentialExecutor | ThreadsExecutor]] = {
    "sequential": SequentialExecutor,
    "threads": ThreadsExecutor,
}
_NAMES = (*_BY_NAME, "processes", "dask")


def __getattr__(name: str) -> Any:
    """Import :class:`ProcessesExecutor` and :class:`DaskExecutor` when first asked for.

    (A worker process imports this package: it need not import subprocess for that.)
    """
    if name == "DaskExecutor":
        from pipekit.executors.dask import DaskExecutor

        return DaskExecutor
    if name == "ProcessesExecutor":
        from pipekit.executors.processes import ProcessesExecutor

        return ProcessesExecutor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_CONFORMING: set[type] = set()


def make_executor(executor: str | Executor, max_workers: int | None) -> Executor:
    """Return an executor for a name (see the module docstring) or the object itself.

    Raises:
        PipekitError: for an unknown name, or ``max_workers`` given with an object.
    """
    if isinstance(executor, str):
        if executor == "dask":
            from pipekit.executors.dask import DaskExecutor

            return DaskExecutor.shared(max_workers)
        if executor == "processes":
            from pipekit.executors.processes import ProcessesExecutor

            return ProcessesExecutor(max_workers)
        cls = _BY_NAME.get(executor)
        if cls is None:
            raise PipekitError(
                f"executor={executor!r} is not known; use one of {', '.join(_NAMES)} "
                "or pass an executor object"
            )
        return cls(max_workers)
    if type(executor) not in _CONFORMING:
        if not isinstance(executor, Executor):  # a slow check: done once per type
            raise PipekitError(
                f"executor={executor!r} is neither a name ({', '.join(_NAMES)}) nor an object with "
                "the pipekit.executors.Executor interface"
            )
        _CONFORMING.add(type(executor))
    if max_workers is not None:
        raise PipekitError(
            "max_workers applies to executors given by name; set it on the executor object instead"
        )
    return executor
