"""The ``python`` operator: a plain function, called like a ``@task`` with the params it names.

``python: "module:function"`` imports a module (the DAG file's folder is on ``sys.path``,
as a Python DAG file's is); ``python: "path/to/file.py:function"`` loads a file relative
to the DAG file. A module that lies beside the DAG file is always that file's own: when
another DAG file's folder has a module of the same name that was imported first (Python
keeps one per name), the one beside this file is loaded under a name of its own; and a
worker process is sent the function with its module's file, which it checks, since its
``sys.path`` holds every folder and could find another one first. The function becomes the
task's function as it is: at run time it is called with the run parameters (and
``for_each`` values) its signature names, plus the task's ``args:`` as constant keyword
arguments; its return value is the task's result.
Both are checked when the DAG file is loaded, so a reference that does not import, or
a function whose arguments the task cannot fill, is reported before anything runs.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import sys
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["plan_call", "resolve"]


def _load(path: Path, target: str) -> ModuleType:
    """Load a file as a module of its own (``pipekit_dags.<stem>_<hash>``), sent by value."""
    from pipekit.errors import PipekitError
    from pipekit.loader import load_file

    try:
        return load_file(path)
    except PipekitError as exc:
        cause = exc.__cause__
        what = f"{type(cause).__name__}: {cause}" if cause is not None else str(exc)
        raise ValueError(f"loading {target!r} failed: {what}") from exc


def _beside(target: str, folder: Path) -> Path | None:
    """The file in ``folder`` that the module name ``target`` names, if there is one."""
    base = folder.joinpath(*target.split("."))
    for candidate in (base / "__init__.py", base.with_name(base.name + ".py")):  # as Python
        if candidate.is_file():
            return candidate.resolve()
    return None


def _from(module: ModuleType, file: Path) -> bool:
    """Whether ``module`` was loaded from ``file``."""
    origin = getattr(module, "__file__", None)
    return origin is not None and Path(origin).resolve() == file


def _module(target: str, folder: Path, cache: dict[str, ModuleType]) -> ModuleType:
    if target in cache:
        return cache[target]
    if target.endswith(".py") or "/" in target:
        path = (folder / target).resolve()
        if not path.is_file():
            raise ValueError(f"there is no file {target!r} next to the DAG file ({path})")
        module = _load(path, target)
    else:
        if str(folder) not in sys.path:  # modules beside the DAG file, as for .py DAG files
            sys.path.insert(0, str(folder))
        beside = _beside(target, folder)
        try:
            module = importlib.import_module(target)
        except Exception as exc:
            if beside is None:
                raise ValueError(
                    f"importing {target!r} failed: {type(exc).__name__}: {exc}"
                ) from exc
            module = _load(beside, target)  # its package name is taken by another folder's
        if beside is not None and not _from(module, beside):
            # Another DAG file's folder has a module of this name, imported first and kept
            # in sys.modules: load the one beside this DAG file under a name of its own.
            # (A worker process, whose sys.path may find another folder's module of this
            # name first, gets the file with the function: executors/_byref.py.)
            module = _load(beside, target)
    cache[target] = module
    return module


def resolve(
    ref: str, folder: Path, cache: dict[str, ModuleType] | None = None
) -> Callable[..., Any]:
    """Import the function ``ref`` names (``module:function`` or ``file.py:function``).

    A function decorated with ``@task`` is unwrapped to the plain function.

    Raises:
        ValueError: with a message saying what did not import and what to write.
    """
    from pipekit.dag import DAG
    from pipekit.task import Task

    target, sep, name = ref.rpartition(":")
    if not sep or not target or not name.isidentifier():
        raise ValueError(
            f"{ref!r} is not 'module:function' or 'path/to/file.py:function'; name the "
            "function after a colon"
        )
    module = _module(target, folder, {} if cache is None else cache)
    fn = getattr(module, name, None)
    if fn is None:
        defined = sorted(
            n for n, v in vars(module).items() if inspect.isfunction(v) and not n.startswith("_")
        )
        close = difflib.get_close_matches(name, defined, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        shown = ", ".join(defined[:8]) + (", ..." if len(defined) > 8 else "")
        raise ValueError(
            f"{target!r} has no function {name!r}; {hint}it defines: {shown or 'none'}"
        )
    if isinstance(fn, Task):
        fn = fn.fn
    if isinstance(fn, DAG) or not callable(fn):
        raise ValueError(f"{ref!r} is a {type(fn).__name__}, not a function")
    return fn


def plan_call(
    fn: Callable[..., Any], available: Collection[str], args: Mapping[str, Any]
) -> tuple[list[str], list[str]]:
    """Which run parameters the function receives, and what stops the call.

    Args:
        fn: the function.
        available: the run parameters and ``for_each`` names.
        args: the task's constant ``args:``.

    Returns:
        (the names from ``available`` that its signature takes, problems as messages).
    """
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin without a signature: pass only args
        return [], []
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
    named: list[str] = []
    problems: list[str] = []
    for p in sig.parameters.values():
        if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        if p.kind is inspect.Parameter.POSITIONAL_ONLY:
            if p.default is inspect.Parameter.empty:
                problems.append(
                    f"its argument {p.name!r} is positional-only; pipekit passes keyword "
                    "arguments, so make it an ordinary parameter"
                )
            continue
        if p.name in args:
            continue
        if p.name in available:
            named.append(p.name)
        elif p.default is inspect.Parameter.empty:
            problems.append(
                f"its argument {p.name!r} is neither a run parameter "
                f"({', '.join(sorted(available)) or 'none declared'}) nor in args:; declare "
                "the parameter, add it to args:, or give it a default"
            )
    if not takes_any:
        accepted = set(sig.parameters)
        for key in args:
            if key not in accepted:
                problems.append(
                    f"args: has {key!r}, which the function does not take; its arguments: "
                    f"{', '.join(sig.parameters) or 'none'}"
                )
    return named, problems
