"""Declarative DAG files: YAML workflows of shell, SQL and Python tasks on pipekit's engine.

A DAG file names its parameters, connections and tasks; :func:`from_yaml` checks it
and returns an ordinary :class:`pipekit.DAG`, so it runs, retries, backfills, re-runs
and is scheduled exactly like a DAG written in Python::

    # flows/marts.yml
    name: marts
    schedule: "@daily"
    start: 2024-01-01
    params:
      ds: {type: date}
    connections:
      warehouse: duckdb:///warehouse.duckdb
    tasks:
      daily:
        sql_file: sql/daily.sql          # $ds in the SQL is bound as a parameter
        conn: warehouse
      publish:
        sh: gzip -kf "out/$ds.csv"       # $ds is an environment variable
        depends_on: [daily]

    dag = pipekit.from_yaml("flows/marts.yml")
    dag.run(ds="2024-01-05")

Loading is strict: the file is parsed with safe YAML loading, checked against
:data:`~pipekit.declarative.schema.SCHEMA` (``pipekit schema``) and then against the
rules a schema cannot state; each problem is a
:class:`~pipekit.declarative.errors.DagFileError` naming the file, line, task and
key. :func:`problems` returns all of them (``pipekit validate``). PyYAML and
jsonschema are imported only here, so ``import pipekit`` stays as fast as before.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipekit.declarative.errors import CommandFailed, DagFileError, SqlFailed

if TYPE_CHECKING:
    import os

    from pipekit.dag import DAG
    from pipekit.errors import PipekitError

__all__ = ["CommandFailed", "DagFileError", "SqlFailed", "from_yaml", "json_schema", "problems"]

SUFFIXES = (".yml", ".yaml")
"""The file name endings of DAG files."""


def _check(path: str | os.PathLike[str]) -> tuple[DAG | None, list[PipekitError]]:
    """The DAG (None unless the file is valid) and every problem found on the way.

    A file without problems is built, so that what the engine itself refuses (a date
    parameter on an hourly schedule, say) is a problem here too: ``pipekit validate``
    and :func:`from_yaml` never disagree.
    """
    from pipekit.declarative import schema
    from pipekit.declarative._build import build
    from pipekit.declarative._compile import compile_source
    from pipekit.declarative._yaml import read_source

    try:
        source = read_source(Path(path))
    except DagFileError as exc:
        return None, [exc]
    checked: list[PipekitError] = list(schema.problems(source))
    later: list[PipekitError] = []
    dag = None
    try:
        plan = compile_source(source, later)
        if plan is not None and not checked:
            dag = build(plan)
    except DagFileError as exc:
        later.append(exc)
    except Exception as exc:  # a module of a python: task failing in its own way, say
        later.append(
            DagFileError(
                f"checking the file failed: {type(exc).__name__}: {exc}; fix what it names "
                "(if it points into pipekit, please report it with the file)",
                file=source.path,
            )
        )
    found = _unique(checked, later)
    return (dag if not found else None), found


def _unique(checked: list[PipekitError], later: list[PipekitError]) -> list[PipekitError]:
    """The schema's problems and the later rules', each once, in the file's order.

    The schema and a later rule may both catch one mistake: a later problem at the
    place of a schema problem is left out. Problems of one check at one place (two
    unknown ``$names`` in one ``sql:``) are all kept.
    """
    marks = {_mark(p) for p in checked}
    unique: list[PipekitError] = []
    seen: set[str] = set()
    for p in [*checked, *(p for p in later if _mark(p) not in marks)]:
        if str(p) not in seen:
            seen.add(str(p))
            unique.append(p)
    # In the file's order; a cycle (which spans tasks) last.
    unique.sort(key=lambda p: (0, p.line or 0) if isinstance(p, DagFileError) else (1, 0))
    return unique


def _mark(p: PipekitError) -> tuple[object, ...]:
    return (p.line, p.task, p.key) if isinstance(p, DagFileError) else (str(p),)


def problems(path: str | os.PathLike[str]) -> list[PipekitError]:
    """Every problem of a DAG file, in the order found (empty: the file is valid).

    Each is a :class:`DagFileError` (or a :class:`pipekit.CycleError` for a cycle)
    whose one-line message names the file, line, task and key. The file is loaded as
    :func:`from_yaml` would (Python references are imported, and a valid file is built
    into a DAG, which is not run), so an empty list means :func:`from_yaml` succeeds.
    """
    return _check(path)[1]


def from_yaml(path: str | os.PathLike[str]) -> DAG:
    """Load a DAG file and return it as a :class:`pipekit.DAG`.

    Args:
        path: the ``.yml``/``.yaml`` file. Relative paths inside it (``sql_file:``,
            ``cwd:``, ``python: file.py:fn``, ``sqlite:///`` and ``duckdb:///`` URLs)
            start at its folder.

    Returns:
        The DAG, named by ``name:`` (default: the file's stem), recorded in runs with
        the file's absolute path so that ``pipekit.rerun`` finds it from a new process.

    Raises:
        DagFileError: the file breaks a rule (the first problem; its notes count the
            others, which :func:`problems` lists).
        CycleError: the tasks' ``depends_on`` form a cycle.

    Example:
        >>> dag = pipekit.from_yaml("flows/marts.yml")
        >>> report = pipekit.backfill(dag, "2024-01-01", "2024-01-31")
    """
    dag, found = _check(path)
    if dag is None:
        first = found[0]
        if len(found) > 1:
            first.add_note(
                f"{len(found) - 1} more problem(s) in this file: run `pipekit validate {path}`"
            )
        raise first
    return dag


def json_schema() -> dict[str, Any]:
    """The JSON Schema (Draft 2020-12) of DAG files, for editors and other tools."""
    import copy

    from pipekit.declarative.schema import SCHEMA

    return copy.deepcopy(SCHEMA)
