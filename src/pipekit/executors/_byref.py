"""Send a ``@task`` function to another process: by value, else by reference.

A task's function travels by value (cloudpickle), as it always has: the worker runs
exactly the code the parent has, whatever modules of the same name the worker's path
or a long-lived Dask worker's ``sys.modules`` hold. By value fails when the function's
module holds a global that cannot be pickled (a ``threading.Lock``): ``@task`` leaves
a :class:`~pipekit.task.Task` under the function's name, so cloudpickle cannot name
the function and copies its globals. :func:`dumps_job` then sends the function as a
:class:`TaskFunction`: a reference ``(module, qualname, file)`` that the worker
resolves to the Task's function, importing the module by name only when that gives
the same file, and loading the file itself under a private name otherwise.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

from pipekit.executors.base import Job

__all__ = ["TaskFunction", "dumps_job", "resolve", "sendable"]


class TaskFunction:
    """A task's function that pickles as a reference to the Task in its module.

    Calling it calls the function; unpickling it (in a worker) imports the module and
    returns the function of the :class:`~pipekit.task.Task` named ``qualname`` there.
    """

    __slots__ = ("file", "fn", "module", "qualname", "root")

    def __init__(
        self,
        fn: Callable[..., Any],
        module: str,
        qualname: str,
        root: str | None = None,
        file: str | None = None,
    ) -> None:
        self.fn = fn
        self.module = module
        self.qualname = qualname
        self.root = root
        """The folder the module's top-level package was imported from, if known."""
        self.file = file
        """The module's file, absolute: the worker runs that file's code, not a namesake's."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the function."""
        return self.fn(*args, **kwargs)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as the module, the qualified name, its folder and its file."""
        return (resolve, (self.module, self.qualname, self.root, self.file))

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


def resolve(
    module: str, qualname: str, root: str | None = None, file: str | None = None
) -> Callable[..., Any]:
    """The function of the task ``module.qualname`` (importing the module); in a worker.

    A module not importable with the worker's ``sys.path`` (a folder added to the
    submitting process's path after the worker started) is looked for in ``root``.
    When the module that name gives here is not ``file`` (another folder's module of
    the same name), ``file`` itself is loaded under a private name.

    Raises:
        ImportError: the module cannot be imported here.
        AttributeError: it has no task or function of that name.
    """
    try:
        importlib.import_module(module)
    except ImportError:
        if file is not None and os.path.exists(file):
            return _from_file(file, qualname)
        if root is None or root in sys.path:
            raise
        sys.path.append(root)
        importlib.import_module(module)
    here = getattr(sys.modules.get(module), "__file__", None)
    if file is not None and (here is None or os.path.abspath(here) != file):
        return _from_file(file, qualname)
    return _function(_lookup(module, qualname), module, qualname)


def _from_file(file: str, qualname: str) -> Callable[..., Any]:
    """The task ``qualname`` of the module file ``file``, loaded under a private name."""
    import hashlib
    import importlib.util

    name = "_pipekit_ref_" + hashlib.sha1(file.encode()).hexdigest()[:16]
    loaded = sys.modules.get(name)
    if loaded is None:
        spec = importlib.util.spec_from_file_location(name, file)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load the task module file {file!r}")
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[name] = loaded
        try:
            spec.loader.exec_module(loaded)
        except BaseException:
            del sys.modules[name]
            raise
    return _function(_lookup(name, qualname), file, qualname)


def _function(found: Any, module: str, qualname: str) -> Callable[..., Any]:
    from pipekit.task import Task

    if isinstance(found, Task):
        fn: Callable[..., Any] = found.fn
        return fn
    if callable(found):
        plain: Callable[..., Any] = found
        return plain
    raise AttributeError(f"module {module!r} has no task {qualname!r}")


def _by_name(fn: Callable[..., Any]) -> TaskFunction | None:
    """A :class:`TaskFunction` for a plain function that pickle would send by name.

    Its module holds it under its own name (it is not a ``@task``), so pickle would
    send ``module.name`` and the worker would import whatever module of that name its
    path finds first (another folder's ``helpers.py``); the reference also names the
    file, which :func:`resolve` checks.
    """
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        return None
    if module == "__main__" or "<" in qualname or _lookup(module, qualname) is not fn:
        return None
    loaded = sys.modules.get(module)
    file = getattr(loaded, "__file__", None)
    if not isinstance(file, str) or _registered_by_value(module):
        return None
    return TaskFunction(fn, module, qualname, _root(module), os.path.abspath(file))


def _registered_by_value(module: str) -> bool:
    """Whether cloudpickle sends ``module`` (or a package holding it) by value."""
    import cloudpickle

    by_value = cloudpickle.list_registry_pickle_by_value()  # DAG files loaded by path
    parts = module.split(".")
    return any(".".join(parts[:n]) in by_value for n in range(1, len(parts) + 1))


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
    if _registered_by_value(module):
        return None
    file = getattr(loaded, "__file__", None)
    where = os.path.abspath(file) if isinstance(file, str) else None
    return TaskFunction(fn, module, qualname, _root(module), where)


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


def dumps_job(job: Job) -> bytes:
    """``job`` pickled for a worker: its function by value, else by reference.

    Raises:
        Exception: what pickling by value raised, when a reference does not help (an
            argument that cannot be pickled, a function not found in its module).
    """
    import cloudpickle

    named = _by_name(job.fn)
    if named is not None:  # pickle would send it by name: send the file along, checked
        job = dataclasses.replace(job, fn=named)
    try:
        data: bytes = cloudpickle.dumps(job)
        return data
    except Exception as by_value:
        ref = sendable(job)
        if ref is job:
            raise
        try:
            data = cloudpickle.dumps(ref)
        except Exception:
            raise by_value from None
        return data
