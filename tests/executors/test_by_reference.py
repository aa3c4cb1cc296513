"""Tasks in importable modules reach worker processes and Dask workers by reference.

``@task`` leaves its :class:`pipekit.Task` wrapper under the function's name, so
plain pickling cannot name the function and cloudpickle would copy it by value with
its module's globals: a lock among them made every such task fail.
"""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

from pipekit.context import TaskContext
from pipekit.executors import Job
from pipekit.executors._byref import TaskFunction, sendable
from pipekit.stores.memory import MemoryStore

from . import locked_tasks, pipelines


@pytest.mark.parametrize("executor", ["processes", "dask"], indirect=True)
def test_a_task_whose_module_holds_a_lock_runs_in_a_worker(
    executor: str, store: MemoryStore
) -> None:
    """The worker imports the task's module (its lock and state are its own) and runs it."""
    run = locked_tasks.locked.run(executor=executor, store=store)
    pid, value = run.tasks["guarded"].result
    assert value == 2
    assert pid != os.getpid()
    loaded = run.tasks["loaded_in"].result
    assert loaded[-1] != os.getpid()  # the module state of the worker, not a copy of ours


def _job(fn: Any) -> Job:
    return Job(1, fn, (), {}, TaskContext("run", "dag", "t", 1, {}))


def test_a_module_task_is_sent_by_reference_and_resolves_to_its_function() -> None:
    """The reference pickles without the module's globals and unpickles to the function."""
    job = sendable(_job(locked_tasks.guarded.fn))
    assert isinstance(job.fn, TaskFunction)
    data = cloudpickle.dumps(job)
    assert b"LOCK" not in data
    assert pickle.loads(data).fn is locked_tasks.guarded.fn
    assert job.fn(1)[1] == 2  # still callable where it is


def test_lambdas_closures_and_plain_functions_keep_travelling_as_before() -> None:
    """Only a Task's function found in its module is swapped; the rest stays as it is."""

    def local() -> int:
        return 1

    for fn in (lambda: 1, local, pipelines.block_until_released, pipelines.note):
        assert sendable(_job(fn)).fn is fn


def test_a_module_outside_the_workers_path_is_imported_from_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder put on sys.path after a worker started is where its module is looked for."""
    (tmp_path / "late_tasks.py").write_text(
        "import threading\n"
        "from pipekit import task\n"
        "LOCK = threading.Lock()\n"
        "@task\n"
        "def late(x):\n"
        "    with LOCK:\n"
        "        return x * 3\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import late_tasks  # type: ignore[import-not-found]

    data = cloudpickle.dumps(sendable(_job(late_tasks.late.fn)))
    monkeypatch.delitem(sys.modules, "late_tasks")
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(tmp_path)])
    fn = pickle.loads(data).fn  # as in a worker whose sys.path lacks tmp_path
    assert fn(2) == 6
    assert str(tmp_path) in sys.path
