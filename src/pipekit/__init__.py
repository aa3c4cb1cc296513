"""pipekit: batch data pipelines as decorated Python functions.

Tasks are functions decorated with :func:`task`; a function decorated with
:func:`dag` wires them into a DAG; :meth:`DAG.run` runs it with fixed parameters and
records every state change in a run-history store::

    from pipekit import dag, task

    @task
    def extract(ds):
        return [1, 2, 3]

    @dag
    def etl(ds):
        extract(ds)

    run = etl.run(ds="2024-01-05")

A YAML DAG file of shell, SQL and Python tasks becomes the same kind of DAG with
:func:`from_yaml` (see :mod:`pipekit.declarative`).

Importing pipekit is cheap: networkx, pendulum, structlog, tenacity and the
database drivers are imported only where they are used.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from pipekit.backfill import backfill
from pipekit.clock import Clock, SystemClock
from pipekit.context import TaskContext, context, get_logger
from pipekit.dag import DAG, dag
from pipekit.errors import (
    ContextError,
    CycleError,
    DefinitionError,
    ParamError,
    PipekitError,
    RunFailed,
    StoreError,
    TaskTimeout,
)
from pipekit.params import Param
from pipekit.retry import Retry
from pipekit.run import Attempt, Run, TaskRun
from pipekit.serve import serve
from pipekit.state import State
from pipekit.task import Skip, Task, TaskRef, task

if TYPE_CHECKING:
    from pipekit.callbacks import Event
    from pipekit.config import configure
    from pipekit.outputs import atomic_path
    from pipekit.recovery import prune, rerun
    from pipekit.report import BackfillReport, DateOutcome

# Names imported on first use (see __getattr__), so that `import pipekit`, and with it
# every worker process, does not pay for them up front. (backfill and serve are imported
# above: a name shared with a submodule would be replaced by that module on its import.)
_LAZY = {
    "Event": "pipekit.callbacks",
    "configure": "pipekit.config",
    "atomic_path": "pipekit.outputs",
    "prune": "pipekit.recovery",
    "rerun": "pipekit.recovery",
    "BackfillReport": "pipekit.report",
    "DateOutcome": "pipekit.report",
}

__version__ = "0.1.0"

__all__ = [
    "DAG",
    "Attempt",
    "BackfillReport",
    "Clock",
    "ContextError",
    "CycleError",
    "DateOutcome",
    "DefinitionError",
    "Event",
    "Param",
    "ParamError",
    "PipekitError",
    "Retry",
    "Run",
    "RunFailed",
    "Skip",
    "State",
    "StoreError",
    "SystemClock",
    "Task",
    "TaskContext",
    "TaskRef",
    "TaskRun",
    "TaskTimeout",
    "__version__",
    "atomic_path",
    "backfill",
    "configure",
    "context",
    "dag",
    "from_yaml",
    "get_logger",
    "prune",
    "rerun",
    "serve",
    "task",
]


def from_yaml(path: str | os.PathLike[str]) -> DAG:
    """Load a YAML DAG file as a :class:`DAG`; see :func:`pipekit.declarative.from_yaml`.

    PyYAML and jsonschema are imported on the first call, not with pipekit.

    Example:
        >>> marts = pipekit.from_yaml("examples/dags/flights_marts.yml")
        >>> marts.run(ds="2013-01-05")
    """
    from pipekit.declarative import from_yaml as load

    return load(path)


def __getattr__(name: str) -> object:
    """Import the subpackages (stores, executors, results, testing, ...) on first use."""
    import importlib

    module = _LAZY.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value
    if name in (
        "stores",
        "executors",
        "results",
        "testing",
        "notify",
        "schedule",
        "loader",
        "declarative",
    ):
        return importlib.import_module(f"pipekit.{name}")
    raise AttributeError(f"module 'pipekit' has no attribute {name!r}")
