"""Executors: where task attempts run. Pick one by name or pass an object.

``"sequential"`` (inline, one at a time), ``"threads"`` (the default; a pool of
threads), ``"processes"`` (worker processes, for CPU-bound Python) and ``"dask"`` (a
dask.distributed cluster: ``$PIPEKIT_DASK_ADDRESS``, else a LocalCluster; needs
``pipekit[dask]``). Each is an implementation of :class:`Executor`; the run loop talks
to nothing else. :class:`DaskExecutor` is imported on first use, so importing this
package never imports dask.

An executor *object* serves one run at a time. Where runs overlap (a backfill with
``max_active_runs`` above 1, ``pipekit.serve``), give a name or an
:data:`ExecutorFactory` instead: a class or a zero-argument callable
(``lambda: ThreadsExecutor(quick=0)``) that each run, or each backfill thread, calls
to make its own executor; pipekit shuts down and closes what it made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipekit.errors import PipekitError
from pipekit.executors.base import Executor, ExecutorFactory, ExecutorSpec, Job, Outcome
from pipekit.executors.sequential import SequentialExecutor
from pipekit.executors.threads import ThreadsExecutor

if TYPE_CHECKING:
    from pipekit.executors.dask import DaskExecutor
    from pipekit.executors.processes import ProcessesExecutor

__all__ = [
    "DaskExecutor",
    "Executor",
    "ExecutorFactory",
    "ExecutorSpec",
    "Job",
    "Outcome",
    "ProcessesExecutor",
    "SequentialExecutor",
    "ThreadsExecutor",
    "check_executor",
    "dispose",
    "is_factory",
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


def is_factory(executor: object) -> bool:
    """True for an :data:`ExecutorFactory`: a class, or a callable that is not an executor."""
    if isinstance(executor, str):
        return False
    return isinstance(executor, type) or (callable(executor) and not hasattr(executor, "submit"))


def check_executor(executor: ExecutorSpec, max_workers: int | None) -> None:
    """Check what :func:`make_executor` can check without making anything.

    A name must be known, ``max_workers`` goes with names only, and an object must have
    the :class:`Executor` interface; a factory is only called when a run starts.

    Raises:
        PipekitError: naming the bad value and the fix.
    """
    if isinstance(executor, str):
        if executor not in _NAMES:
            make_executor(executor, None)  # raises, naming the known executors
        return
    _check_max_workers(executor, max_workers)
    if not is_factory(executor):
        make_executor(executor, None)  # raises unless the object conforms


def _check_max_workers(executor: object, max_workers: int | None) -> None:
    if max_workers is not None:
        factory = is_factory(executor)
        given = "a factory" if factory else "an object"
        raise PipekitError(
            f"max_workers={max_workers!r} applies to executors given by name, and "
            f"executor={executor!r} is {given}; set max_workers on the executor it "
            f"{'makes' if factory else 'is'} instead"
        )


def make_executor(executor: ExecutorSpec, max_workers: int | None) -> Executor:
    """Return the executor ``executor`` names or makes, or the object itself.

    Raises:
        PipekitError: for an unknown name, a factory that fails or makes no executor, or
            ``max_workers`` given with an object or a factory.
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
                f"executor={executor!r} is not known; use one of {', '.join(_NAMES)}, "
                "an executor object or a factory making one"
            )
        return cls(max_workers)
    _check_max_workers(executor, max_workers)
    if is_factory(executor):
        return _made_by(executor)  # type: ignore[arg-type]
    _check_conforms(executor, f"executor={executor!r} is neither a name ({', '.join(_NAMES)})")
    return executor  # type: ignore[return-value]


def _made_by(factory: ExecutorFactory) -> Executor:
    try:
        made = factory()
    except PipekitError:
        raise
    except Exception as exc:
        raise PipekitError(
            f"executor factory {factory!r} raised {type(exc).__name__}: {exc}; fix the "
            "factory (it is called with no arguments) or pass an executor name"
        ) from exc
    _check_conforms(made, f"executor factory {factory!r} returned {made!r}, which is not")
    return made


def _check_conforms(executor: object, what: str) -> None:
    """Raise PipekitError (``what`` + the fix) unless ``executor`` is an Executor."""
    if type(executor) in _CONFORMING:
        return
    if not isinstance(executor, Executor):  # a slow check: done once per type
        raise PipekitError(
            f"{what} an object with the pipekit.executors.Executor interface (start, submit, "
            "cancel, shutdown and capacity); pass a name, such an object, or a factory "
            "making one"
        )
    _CONFORMING.add(type(executor))


def dispose(engine: Executor, *, cancel: bool = False) -> None:
    """Shut down an executor pipekit made (by name or factory) and close what it holds.

    ``close()``, where the executor has one (a :class:`DaskExecutor`'s client and
    cluster), is called after :meth:`Executor.shutdown`, even when that raises.
    """
    try:
        engine.shutdown(cancel=cancel)
    finally:
        close = getattr(engine, "close", None)
        if callable(close):
            close()
