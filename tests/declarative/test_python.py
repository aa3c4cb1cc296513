"""The python operator: a plain function, found by module or file, called like a @task."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipekit.declarative import from_yaml
from pipekit.stores import MemoryStore
from tests.declarative.conftest import DAGS, Write


def test_a_module_function_gets_the_params_it_names_and_args(write: Write) -> None:
    """module:function from the DAG file's folder; params it names plus args:; its result."""
    write(
        '''
        def scaled(ds, factor, offset=0):
            """Return what it got."""
            return f"{ds} x{factor} +{offset}"
        ''',
        "pk_pyop_mod.py",
    )
    path = write(
        """
        params: {ds: {type: date}, unused: {type: int, default: 1}}
        tasks:
          calc:
            python: pk_pyop_mod:scaled
            args: {factor: 3}
        """
    )
    dag = from_yaml(path)
    assert set(dag.tasks["calc"].kwargs) == {"ds", "factor"}
    run = dag.run(ds="2024-01-05", store=MemoryStore())
    assert run.tasks["calc"].result == "2024-01-05 x3 +0"


def test_a_file_function_relative_to_the_dag_file_with_for_each_values(write: Write) -> None:
    """path/file.py:function loads the file; a for_each name it takes is passed per task."""
    write(
        '''
        def tag(ds, zone):
            """Return the zone and the date."""
            return f"{zone}@{ds}"
        ''',
        "lib/tags.py",
    )
    path = write(
        """
        params: {ds: {type: date}}
        tasks:
          tag:
            for_each: {zone: [north, south]}
            python: lib/tags.py:tag
        """
    )
    run = from_yaml(path).run(ds="2024-01-05", store=MemoryStore(), executor="processes")
    assert run.tasks["tag[north]"].result == "north@2024-01-05"
    assert run.tasks["tag[south]"].result == "south@2024-01-05"


def test_a_task_decorated_function_is_called_as_the_plain_function(write: Write) -> None:
    """A reference to an @task function calls its function (its decorator options do not apply)."""
    write(
        '''
        import pipekit

        @pipekit.task(retries=3)
        def double(n):
            """Twice n."""
            return 2 * n
        ''',
        "pk_pyop_task.py",
    )
    path = write(
        """
        params: {n: {type: int}}
        tasks:
          d: {python: "pk_pyop_task:double"}
        """
    )
    dag = from_yaml(path)
    assert dag.tasks["d"].task.retry.attempts == 1
    assert dag.run(n="21", store=MemoryStore()).tasks["d"].result == 42


def test_a_failing_function_fails_its_task_with_its_error(write: Write) -> None:
    """The function's exception is the task's error, retried as the task says."""
    path = write(
        f"""
        params: {{ds: {{type: date}}}}
        tasks:
          boom: {{python: "{DAGS / "yaml_ops.py"}:explode", retries: 1}}
        """
    )
    run = from_yaml(path).run(ds="2024-01-05", store=MemoryStore(), raise_on_failure=False)
    assert run.tasks["boom"].attempts == 2
    assert (run.tasks["boom"].error or "").startswith("ValueError: no data for 2024-01-05")


def test_the_dag_files_folder_is_where_modules_are_found(write: Write, tmp_path: Path) -> None:
    """A module next to the DAG file imports even when the current directory is elsewhere."""
    write("def here():\n    return 'found'\n", "pk_pyop_beside.py")
    path = write("tasks:\n  t: {python: 'pk_pyop_beside:here'}\n")
    assert from_yaml(path).run(store=MemoryStore()).tasks["t"].result == "found"
    assert str(tmp_path) in __import__("sys").path


@pytest.fixture
def forget_helpers() -> Iterator[str]:
    """The module name two DAG folders share; forgotten (and unregistered) afterwards."""
    name = "pk_pyop_helpers"
    yield name
    module = sys.modules.pop(name, None)
    if module is not None:
        import cloudpickle

        with contextlib.suppress(ValueError):
            cloudpickle.unregister_pickle_by_value(module)


@pytest.mark.parametrize("executor", ["sequential", "processes"])
def test_two_folders_with_a_module_of_the_same_name_each_get_their_own(
    write: Write, forget_helpers: str, executor: str
) -> None:
    """flows/sales and flows/hr each have helpers.py: each DAG file calls the one beside it.

    Python caches the first import in sys.modules; the second DAG file's folder must not
    get it, and a worker process, whose sys.path holds both folders, must run each
    file's own function too.
    """
    dags = {}
    for team in ("sales", "hr"):
        module = f"def export(ds):\n    return '{team} ' + str(ds)\n"
        write(module, f"flows/{team}/{forget_helpers}.py")
        path = write(
            f"params: {{ds: {{type: date}}}}\ntasks:\n  t: {{python: '{forget_helpers}:export'}}\n",
            f"flows/{team}/{team}.yml",
        )
        dags[team] = from_yaml(path)
    for team, dag in dags.items():
        run = dag.run(ds="2024-01-05", store=MemoryStore(), executor=executor)
        assert run.tasks["t"].result == f"{team} 2024-01-05"


@pytest.mark.parametrize("executor", ["sequential", "processes"])
def test_a_module_beside_the_dag_file_may_hold_globals_that_cannot_be_pickled(
    write: Write, forget_helpers: str, executor: str
) -> None:
    """A helper module with a lock: the worker gets the function by reference (its file),
    not by value, which would try to pickle the lock."""
    write(
        "import threading\n_LOCK = threading.Lock()\n"
        "def work(ds):\n    with _LOCK:\n        return 'done ' + str(ds)\n",
        f"flows/locked/{forget_helpers}.py",
    )
    path = write(
        f"params: {{ds: {{type: date}}}}\ntasks:\n  w: {{python: '{forget_helpers}:work'}}\n",
        "flows/locked/locked.yml",
    )
    run = from_yaml(path).run(ds="2024-01-05", store=MemoryStore(), executor=executor)
    assert run.tasks["w"].result == "done 2024-01-05"
