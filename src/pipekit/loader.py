"""Finding DAGs: in files, folders and modules, by reference.

A DAG reference (DAGREF) is ``path/to/file.py:name``, ``package.module:name``, or a file
path alone when the file holds exactly one DAG (a YAML DAG file always does). A folder
holds DAG files: every ``*.py`` below it, and every ``*.yml``/``*.yaml`` with a
top-level ``tasks:`` key (other YAML files, such as configuration, are left alone),
whose name does not start with ``_`` or ``.``. Python files are loaded as modules
without running their ``if __name__ == "__main__":`` block, with their folder on
``sys.path`` so that they can import their neighbours; a YAML file is loaded with
:func:`pipekit.from_yaml` into a module that holds its one DAG, so every caller
(``list``, ``serve``, re-runs from a new process) treats both kinds alike.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import re
import sys
from pathlib import Path
from types import ModuleType

from pipekit.dag import DAG
from pipekit.errors import PipekitError

__all__ = ["dags_in", "find_files", "is_yaml", "load_file", "module_name", "resolve"]

_YAML = (".yml", ".yaml")
_TASKS_KEY = re.compile(r"^tasks[ \t]*:", re.MULTILINE)


def is_yaml(path: str | Path) -> bool:
    """True for a ``.yml``/``.yaml`` path (a declarative DAG file)."""
    return str(path).lower().endswith(_YAML)


def _is_dag_yaml(path: Path) -> bool:
    """A YAML file in a folder is a DAG file when it has a top-level ``tasks:`` key."""
    try:
        return _TASKS_KEY.search(path.read_text(encoding="utf-8", errors="replace")) is not None
    except OSError:
        return False


def module_name(path: Path) -> str:
    """The name a DAG file's module gets (``pipekit_dags.<stem>_<hash of the path>``)."""
    digest = hashlib.sha1(str(path).encode(), usedforsecurity=False).hexdigest()[:10]
    stem = "".join(c if c.isalnum() else "_" for c in path.stem)
    return f"pipekit_dags.{stem}_{digest}"


def load_file(path: str | Path) -> ModuleType:
    """Load (or load again) a DAG file as a module and return it.

    A Python file is executed as a module; a YAML DAG file is loaded with
    :func:`pipekit.from_yaml` into a module whose ``dag`` attribute is the DAG. Either
    module is kept in ``sys.modules``, which keeps its DAGs findable by name.

    Raises:
        PipekitError: the file does not exist or raises while loading (message names it);
            for a YAML file, its first problem (a ``DagFileError`` naming file and line).
    """
    file = Path(path).resolve()
    if not file.is_file():
        raise PipekitError(f"no such DAG file: {str(path)!r}; check the path")
    name = module_name(file)
    if is_yaml(file):
        return _load_yaml(path, file, name)
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise PipekitError(f"cannot load {str(path)!r} as Python; DAG files end in .py")
    module = importlib.util.module_from_spec(spec)
    parent = str(file.parent)
    if parent not in sys.path:
        sys.path.insert(0, parent)
    if "pipekit_dags" not in sys.modules:
        sys.modules["pipekit_dags"] = ModuleType("pipekit_dags")
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise PipekitError(
            f"loading DAG file {str(path)!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    import cloudpickle

    # Worker processes cannot import this synthetic module: send its functions by value.
    cloudpickle.register_pickle_by_value(module)
    return module


def _load_yaml(path: str | Path, file: Path, name: str) -> ModuleType:
    from pipekit.declarative import from_yaml

    try:
        dag = from_yaml(path)
    except PipekitError:
        raise
    except Exception as exc:  # as for a Python file: one broken file never hides the others
        raise PipekitError(
            f"loading DAG file {str(path)!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    module = ModuleType(name, dag.description)
    module.__file__ = str(file)
    module.dag = dag  # type: ignore[attr-defined]
    if "pipekit_dags" not in sys.modules:
        sys.modules["pipekit_dags"] = ModuleType("pipekit_dags")
    sys.modules[name] = module
    return module


def dags_in(module: ModuleType) -> list[DAG]:
    """The DAG objects a module defines at top level, in definition order."""
    seen: list[DAG] = []
    for value in vars(module).values():
        if isinstance(value, DAG) and all(value is not d for d in seen):
            seen.append(value)
    return seen


def find_files(path: str | Path) -> list[Path]:
    """The DAG files at ``path``: the file itself, or the DAG files below a folder.

    Below a folder: every ``*.py``, and every ``*.yml``/``*.yaml`` with a top-level
    ``tasks:`` key, skipping names (and folders) that start with ``_`` or ``.``; in
    path order.
    """
    root = Path(path)
    if root.is_file():
        return [root.resolve()]
    if not root.is_dir():
        raise PipekitError(f"no such file or folder: {str(path)!r}; check the path")
    files = []
    for file in sorted(root.rglob("*")):
        if file.suffix.lower() not in (".py", *_YAML) or not file.is_file():
            continue
        rel = file.relative_to(root)
        if any(part.startswith(("_", ".")) for part in rel.parts):
            continue
        if is_yaml(file) and not _is_dag_yaml(file):
            continue
        files.append(file.resolve())
    return files


def resolve(ref: str) -> DAG:
    """Return the DAG a reference names: ``file.py:name``, ``pkg.module:name``, or a file.

    A file alone (``file.py``, or a YAML DAG file such as ``flows/x.yml``) must hold
    exactly one DAG.

    Raises:
        PipekitError: the file or module cannot be found or loaded, it holds no DAG of
            that name, or a bare file holds no DAG or several (the message lists them).
    """
    target, _, name = ref.rpartition(":") if ":" in ref else (ref, "", "")
    if not target:
        raise PipekitError(f"DAG reference {ref!r} is empty before ':'; write file.py:name")
    is_file = target.endswith((".py", *_YAML)) or "/" in target or Path(target).is_file()
    if is_file:
        module = load_file(target)
    else:
        if os.getcwd() not in sys.path:  # as `python -m` does: modules of the project
            sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise PipekitError(
                f"cannot import module {target!r} for DAG reference {ref!r} ({exc}); "
                "give a file path (path/to/dags.py:name) or an importable module"
            ) from exc
    found = dags_in(module)
    if name:
        for d in found:
            if d.name == name:
                return d
        obj = getattr(module, name, None)
        if isinstance(obj, DAG):
            return obj
        listed = ", ".join(d.name for d in found) or "none"
        raise PipekitError(f"{target!r} has no DAG named {name!r}; its DAGs: {listed}")
    if len(found) == 1:
        return found[0]
    if not found:
        raise PipekitError(
            f"{target!r} defines no DAG; decorate a function with @dag, or give a YAML DAG file"
        )
    listed = ", ".join(d.name for d in found)
    raise PipekitError(
        f"{target!r} defines several DAGs ({listed}); name one, as in {target}:{found[0].name}"
    )
