"""Task functions reach worker processes and Dask workers by value, else by reference.

By value, the worker runs exactly the parent's code. ``@task`` leaves its
:class:`pipekit.Task` wrapper under the function's name, so a function whose module
holds a global that cannot be pickled (a lock) fails by value: it then goes by
reference, and the worker finds the same file (not a namesake module) again.
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


LOCKED_MODULE = """\
import threading
from pipekit import dag, task
LOCK = threading.Lock()
@task
def which(x):
    with LOCK:
        return "{label}", x
@dag
def ask():
    which(1)
"""


@pytest.mark.parametrize("executor", ["processes", "dask"], indirect=True)
def test_a_reference_runs_the_parents_file_not_a_namesake_module(
    executor: str, store: MemoryStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task sent by reference whose module name the worker resolves to another folder's
    file of the same name runs the parent's file all the same."""
    for label in ("mine", "namesake"):
        (tmp_path / label).mkdir()
        (tmp_path / label / "twin_tasks.py").write_text(LOCKED_MODULE.format(label=label))
    monkeypatch.syspath_prepend(str(tmp_path / "mine"))
    monkeypatch.setitem(sys.modules, "twin_tasks", None)  # so: removed again afterwards
    del sys.modules["twin_tasks"]
    import twin_tasks  # type: ignore[import-not-found]

    monkeypatch.syspath_prepend(str(tmp_path / "namesake"))  # first on the worker's path
    run = twin_tasks.ask.run(executor=executor, store=store)
    assert run.tasks["which"].result == ("mine", 1)


HELPERS = """\
from pipekit import task
@task
def double(x):
    return {body}
"""


def test_tasks_of_two_folders_with_a_module_of_one_name_each_run_their_own(
    store: MemoryStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Functions that pickle go by value: a worker never picks up a namesake module."""
    from pipekit.loader import dags_in, load_file

    for team, body in (("a", "x * 2"), ("b", "'WRONG MODULE'")):
        (tmp_path / team).mkdir()
        (tmp_path / team / "helpers.py").write_text(HELPERS.format(body=body))
    (tmp_path / "a" / "flow.py").write_text(
        "from pipekit import dag\nfrom helpers import double\n@dag\ndef flow_a():\n    double(21)\n"
    )
    (tmp_path / "b" / "other.py").write_text(
        "from pipekit import dag\nimport helpers\n@dag\ndef flow_b():\n    helpers.double(1)\n"
    )
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setitem(sys.modules, "helpers", None)  # so: removed again afterwards
    del sys.modules["helpers"]
    found = [
        d
        for f in (tmp_path / "a" / "flow.py", tmp_path / "b" / "other.py")
        for d in dags_in(load_file(f))
    ]
    flow_a = next(d for d in found if d.name == "flow_a")
    run = flow_a.run(executor="processes", store=store)
    assert run.tasks["double"].result == 42
