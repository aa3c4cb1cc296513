"""Send a ``@task`` function to another process by reference when its module is importable.

``@task`` leaves a :class:`~pipekit.task.Task` under the function's name in its module
(``functools.update_wrapper`` copies ``__module__`` and ``__qualname__``), so pickle's
lookup of ``module.qualname`` finds the wrapper, not the function, and cloudpickle
falls back to pickling the function *by value*, module globals included. That ships
module data with every job, gives the worker a copy of module state instead of the
module itself, and fails outright for a global that cannot be pickled (a
``threading.Lock``). :func:`sendable` swaps such a function for a :class:`TaskFunction`,
which pickles as ``(module, qualname)`` and unpickles, in the worker, to the function
of the Task found there. Everything else (lambdas, closures, functions in
``__main__`` or in DAG files loaded by path) still travels by value.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

from pipekit.executors.base import Job

__all__ = ["TaskFunction", "resolve", "sendable"]


class TaskFunction:
    """A task's function that pickles as a reference to the Task in its module.

    Calling it calls the function; unpickling it (in a worker) imports the module and
    returns the function of the :class:`~pipekit.task.Task` named ``qualname`` there.
    """

    __slots__ = ("fn", "module", "qualname", "root")

    def __init__(
        self, fn: Callable[..., Any], module: str, qualname: str, root: str | None = None
    ) -> None:
        self.fn = fn
        self.module = module
        self.qualname = qualname
        self.root = root
        """The folder the module's top-level package was imported from, if known."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the function."""
        return self.fn(*args, **kwargs)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as the module, the qualified name and the folder to import it from."""
        return (resolve, (self.module, self.qualname, self.root))

    def __repr__(self) -> str:
        """Name the function it refers to."""
        return f"<task function {self.module}.{self.qualname}>"


def _lookup(module: str, qualname: str) -> Any:
    """``module.qualname`` if the module is loaded, else None."""
    found: Any = sys.modules.get(module)
    for part in qualname.split("."):
        if found is None:
            return None
        found = getattr(found, part, None)
    return found


def resolve(module: str, qualname: str, root: str | None = None) -> Callable[..., Any]:
    """The function of the task ``module.qualname`` (importing the module); in a worker.

    A module not importable with the worker's ``sys.path`` (a folder added to the
    submitting process's path after the worker started) is looked for in ``root``.

    Raises:
        ImportError: the module cannot be imported here.
        AttributeError: it has no task or function of that name.
    """
    try:
        importlib.import_module(module)
    except ImportError:
        if root is None or root in sys.path:
            raise
        sys.path.append(root)
        importlib.import_module(module)
    found = _lookup(module, qualname)
    from pipekit.task import Task

    if isinstance(found, Task):
        fn: Callable[..., Any] = found.fn
        return fn
    if callable(found):
        plain: Callable[..., Any] = found
        return plain
    raise AttributeError(f"module {module!r} has no task {qualname!r}")


def _by_reference(fn: Callable[..., Any]) -> TaskFunction | None:
    """A :class:`TaskFunction` for ``fn`` if its module holds a Task of it, else None."""
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        return None
    if module == "__main__" or "<" in qualname:  # a script, a closure or a lambda
        return None
    loaded = sys.modules.get(module)
    if loaded is None or getattr(loaded, "__spec__", None) is None:
        return None
    from pipekit.task import Task

    found = _lookup(module, qualname)
    if not isinstance(found, Task) or found.fn is not fn:
        return None
    import cloudpickle

    by_value = cloudpickle.list_registry_pickle_by_value()  # DAG files loaded by path
    parts = module.split(".")
    if any(".".join(parts[:n]) in by_value for n in range(1, len(parts) + 1)):
        return None
    return TaskFunction(fn, module, qualname, _root(module))


def _root(module: str) -> str | None:
    """The folder that holds ``module``'s top-level package (or module), if it has a file."""
    top = sys.modules.get(module.split(".", 1)[0])
    file = getattr(top, "__file__", None)
    if not isinstance(file, str):
        return None
    folder = os.path.dirname(os.path.abspath(file))
    return os.path.dirname(folder) if hasattr(top, "__path__") else folder


def sendable(job: Job) -> Job:
    """``job`` with its function replaced by a reference where that is possible."""
    ref = _by_reference(job.fn)
    return job if ref is None else dataclasses.replace(job, fn=ref)
