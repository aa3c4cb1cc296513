"""Names YAML reads as something other than text (``1:``, ``2024:``, ``~:``) are problems.

JSON Schema's name patterns skip keys that are not strings, so such a name used to pass
the schema and crash later (TypeError in ``pipekit list``). Each is now one located
problem that says how to quote it, and a folder's other DAG files still load.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipekit.declarative import DagFileError, from_yaml, problems
from pipekit.errors import PipekitError
from pipekit.loader import load_file
from tests.declarative.conftest import Write


@pytest.mark.parametrize(
    ("text", "line", "task", "key", "says"),
    [
        (
            """
            tasks:
              1: {sh: "true"}
              b: {sh: "true", depends_on: [x]}
            """,
            2,
            None,
            "tasks",
            "task name 1 is read by YAML as a number; quote it: '1'",
        ),
        (
            """
            params:
              2024: {type: int, default: 1}
            tasks: {a: {sh: "true"}}
            """,
            2,
            None,
            "params",
            "param name 2024 is read by YAML as a number; quote it: '2024'",
        ),
        (
            """
            params:
              ~: {type: int, default: 1}
            tasks: {a: {sh: "true"}}
            """,
            2,
            None,
            "params",
            "param name ~ is read by YAML as null; quote it: '~'",
        ),
        (
            """
            tasks:
              a:
                sh: echo "$x"
                for_each: {~: [eu, us]}
            """,
            4,
            "a",
            "for_each",
            "for_each name ~ is read by YAML as null; quote it: '~'",
        ),
        (
            """
            connections:
              1.5: "sqlite:///x.db"
            tasks: {a: {sql: "SELECT 1", conn: "1.5"}}
            """,
            2,
            None,
            "connections",
            "connection name 1.5 is read by YAML as a number; quote it: '1.5'",
        ),
        (
            """
            tasks:
              a: {sh: "true", env: {true: x}}
            """,
            2,
            "a",
            "env",
            "environment variable name true is read by YAML as true or false",
        ),
    ],
    ids=["task", "param", "null param", "for_each", "connection", "env"],
)
def test_a_name_yaml_reads_as_a_number_or_null_is_one_located_problem(
    write: Write, text: str, line: int, task: str | None, key: str, says: str
) -> None:
    """The problem names the key as written and the fix; nothing crashes on the way."""
    path = write(text)
    found = problems(path)
    assert found and all(type(p) is DagFileError for p in found), found
    problem = found[0]  # then, say, a depends_on or conn: naming what is not there
    assert isinstance(problem, DagFileError)
    assert (problem.line, problem.task, problem.key) == (line, task, key)
    assert says in str(problem)
    with pytest.raises(DagFileError, match="is read by YAML as"):
        from_yaml(path)


def test_keys_inside_a_python_tasks_args_value_may_be_numbers(write: Write) -> None:
    """args: {codes: {1: a}} is the function's data: a dict with int keys, as written."""
    write(
        '''
        def lookup(codes):
            """Return the mapping it got."""
            return codes
        ''',
        "pk_names_mod.py",
    )
    path = write(
        """
        tasks:
          a:
            python: pk_names_mod:lookup
            args: {codes: {1: one, 2: two}}
        """
    )
    assert problems(path) == []
    from pipekit.stores import MemoryStore

    run = from_yaml(path).run(store=MemoryStore())
    assert run.tasks["a"].result == {1: "one", 2: "two"}


def test_a_file_that_raises_an_unexpected_error_does_not_hide_the_others(
    write: Write, tmp_path: Path
) -> None:
    """list and load_file report a PipekitError naming the file; the good file is listed."""
    write('tasks:\n  ok: {sh: "true"}\n', "dags/good.yml")
    write("tasks:\n  1: {sh: 'true'}\n  2: {sh: 'true', depends_on: [nope]}\n", "dags/num.yml")
    write(
        '''
        def __getattr__(name):
            """A lazy module whose lookups fail with an error of its own."""
            raise RuntimeError(f"cannot make {name}")
        ''',
        "dags/lazy.py",
    )
    lazy = write("tasks:\n  t: {python: 'lazy:export'}\n", "dags/lazy_dag.yml")
    with pytest.raises(PipekitError, match=r"lazy_dag\.yml.*RuntimeError: cannot make export"):
        load_file(lazy)
    listed = subprocess.run(
        [sys.executable, "-m", "pipekit", "list", str(tmp_path / "dags")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert listed.returncode == 1, listed.stderr
    assert "good.yml" in listed.stdout and "Traceback" not in listed.stderr
    errors = listed.stderr.splitlines()
    assert any("num.yml:2" in e and "task name 1 is read by YAML" in e for e in errors), errors
    assert any("lazy_dag.yml" in e and "RuntimeError: cannot make export" in e for e in errors)
    checked = subprocess.run(
        [sys.executable, "-m", "pipekit", "validate", str(tmp_path / "dags")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 2 and "Traceback" not in checked.stderr, checked.stderr
    assert "good.yml: ok" in checked.stdout
    assert "lazy_dag.yml" in checked.stderr and "task name 2 is read by YAML" in checked.stderr


def test_a_mapping_that_contains_itself_through_an_alias_is_checked_once(write: Write) -> None:
    """tasks: &x {a: {env: *x}}: the key check ends, and the schema's problem is reported."""
    path = write('tasks: &x\n  a: {sh: "true", env: *x}\n')
    (problem,) = problems(path)
    assert isinstance(problem, DagFileError) and problem.key == "env.a"


def test_a_number_key_merged_in_with_a_merge_key_is_reported_once(write: Write) -> None:
    """env: &e {1: x} in task a, merged into task b with <<: *e: one problem, at task a."""
    path = write(
        "name: merge\ntasks:\n"
        "  a:\n    sh: env\n    env: &e\n      1: x\n"
        "  b:\n    sh: env\n    env:\n      <<: *e\n      Y: z\n"
    )
    found = [p for p in problems(path) if "read by YAML as a number" in str(p)]
    assert len(found) == 1
    assert found[0].task == "a"
