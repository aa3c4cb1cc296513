"""From a checked plan to an ordinary :class:`pipekit.DAG`, on the engine's own constructor.

:class:`pipekit.DAG` is made from a function whose body calls tasks. For a DAG file,
that function is generated: its signature declares the file's parameters (with the
annotation of each ``type:``, so they are converted as a Python DAG's are), and its
body calls each task with the run parameters it takes and then orders the calls by
``depends_on``. Everything downstream (runs, retries, re-runs, backfills, the
scheduler) sees a DAG like any other. The DAG records the file's path as its
``file``, so a later process finds it again from a recorded run.
"""

from __future__ import annotations

import datetime as dt
import inspect
from typing import TYPE_CHECKING, Any

from pipekit.declarative.errors import DagFileError
from pipekit.errors import DefinitionError

if TYPE_CHECKING:
    from pipekit.dag import DAG
    from pipekit.declarative._compile import Plan

__all__ = ["build"]

_TYPES: dict[str, type] = {
    "date": dt.date,
    "datetime": dt.datetime,
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
}


def build(plan: Plan) -> DAG:
    """Make the DAG a plan describes.

    Raises:
        DagFileError: the engine refused the DAG: located at ``tasks.<name>.output``
            for a task's output, otherwise at ``schedule`` (a date parameter on a
            schedule that runs more than once a day, say).
    """
    from pipekit.dag import DAG
    from pipekit.loader import module_name
    from pipekit.task import task

    made = [(bp, task(name=bp.id, **bp.options)(bp.fn)) for bp in plan.tasks]

    def body(**params: Any) -> None:
        refs = {}
        for bp, t in made:
            refs[bp.id] = t(**bp.constants, **{p: params[p] for p in bp.params})
        for bp, _ in made:
            for up in bp.upstream:
                refs[up] >> refs[bp.id]

    annotations = {n: _TYPES[p.kind or "str"] for n, p in plan.params.items()}
    signature = inspect.Signature(
        [
            inspect.Parameter(
                n,
                inspect.Parameter.KEYWORD_ONLY,
                default=p.default,  # inspect.Parameter.empty when required
                annotation=annotations[n],
            )
            for n, p in plan.params.items()
        ]
    )
    path = plan.source.path.resolve()
    module = module_name(path)
    body.__signature__ = signature  # type: ignore[attr-defined]
    body.__annotations__ = annotations
    body.__name__ = body.__qualname__ = plan.name
    body.__module__ = module
    body.__doc__ = plan.description
    try:
        dag = DAG(body, name=plan.name, description=plan.description, **plan.dag_options)
    except DefinitionError as exc:
        # The engine names a task whose output it refuses; anything else is about the
        # schedule and the parameter that receives its dates.
        named = next((bp.written for bp in plan.tasks if f"task {bp.id!r}" in str(exc)), None)
        if named is not None and "output=" in str(exc):
            where: list[str | int] = ["tasks", named, "output"]
            located = {"task": named, "key": "output"}
        else:
            where, located = ["schedule"], {"key": "schedule"}
        raise DagFileError(
            str(exc), file=plan.source.path, line=plan.source.line(where), **located
        ) from exc
    dag.module = module
    dag.file = str(path)
    return dag
