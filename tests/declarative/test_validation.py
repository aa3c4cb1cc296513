"""Validation at load: each problem is one error naming file, line, task and key, with a fix."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from pipekit import CycleError, DefinitionError
from pipekit.declarative import DagFileError, from_yaml, problems
from tests.declarative.conftest import DAGS, Write


@dataclass(frozen=True)
class Case:
    """A DAG file with one mistake, and what its one problem must say."""

    id: str
    text: str
    line: int | None
    task: str | None
    key: str | None
    says: tuple[str, ...]


OPS = DAGS / "yaml_ops.py"

CASES = [
    Case(
        "unknown top-level key, close match suggested",
        """
        name: x
        schedul: "@daily"
        tasks: {a: {sh: "true"}}
        """,
        2,
        None,
        "schedul",
        ("unknown key; did you mean 'schedule'?", "allowed here: name, description, schedule"),
    ),
    Case(
        "unknown task key, close match suggested",
        """
        tasks:
          a:
            sh: "true"
            depnds_on: [b]
          b: {sh: "true"}
        """,
        4,
        "a",
        "depnds_on",
        ("unknown key; did you mean 'depends_on'?", "allowed here: sh, sql, sql_file, python"),
    ),
    Case(
        "unknown key in a param",
        """
        params: {ds: {type: date, defualt: 2024-01-01}}
        tasks: {a: {sh: "true"}}
        """,
        1,
        None,
        "params.ds.defualt",
        ("did you mean 'default'?", "allowed here: type, default, description"),
    ),
    Case(
        "unknown notifier",
        """
        on_failure:
          - slack: {url: "https://hooks.example.test/x"}
        tasks: {a: {sh: "true"}}
        """,
        2,
        None,
        "on_failure[0].slack",
        ("unknown key", "allowed here: webhook, email"),
    ),
    Case(
        "a task without an operator",
        """
        tasks:
          a:
            retries: 2
        """,
        2,
        "a",
        None,
        ("has no operator; give exactly one of sh:, sql:, sql_file:, python:",),
    ),
    Case(
        "a task with two operators",
        """
        tasks:
          a:
            sh: "true"
            python: "os:getcwd"
        """,
        4,
        "a",
        "python",
        ("has sh: and python:; give exactly one operator per task",),
    ),
    Case(
        "depends_on an unknown task, close match suggested",
        """
        tasks:
          extract: {sh: "true"}
          load:
            sh: "true"
            depends_on: [extrakt]
        """,
        5,
        "load",
        "depends_on[0]",
        ("'extrakt' is not a task of this file; did you mean 'extract'?", "tasks: extract, load"),
    ),
    Case(
        "an unknown connection, close match suggested",
        """
        connections: {warehouse: "duckdb:///w.duckdb"}
        tasks:
          a: {sql: "SELECT 1", conn: warehose}
        """,
        3,
        "a",
        "conn",
        ("'warehose' is not a connection; did you mean 'warehouse'?", "connections: warehouse"),
    ),
    Case(
        "an sql task without any connection",
        """
        tasks:
          a: {sql: "SELECT 1"}
        """,
        2,
        "a",
        None,
        ("an sql task needs conn:",),
    ),
    Case(
        "a connection to an unsupported database",
        """
        connections: {db: "mysql://localhost/x"}
        tasks: {a: {sql: "SELECT 1", conn: db}}
        """,
        1,
        None,
        "connections.db",
        ("unknown database 'mysql'", "sqlite:///, duckdb:///, postgresql://"),
    ),
    Case(
        "a $name in inline SQL that is not a param",
        """
        params: {ds: {type: date}}
        tasks:
          a:
            sql: "DELETE FROM t WHERE ds = $dss"
            conn: "sqlite:///x.db"
        """,
        4,
        "a",
        "sql",
        ("the SQL's $dss names no run parameter; did you mean 'ds'?", "known names: ds"),
    ),
    Case(
        "a $name in an sql_file that is not a param, with the SQL file's line",
        """
        params: {ds: {type: date}}
        tasks:
          a: {sql_file: sql/bad.sql, conn: "sqlite:///x.db"}
        """,
        3,
        "a",
        "sql_file",
        ("the SQL's $region (sql/bad.sql line 3) names no run parameter",),
    ),
    Case(
        "a ${name} in an argument list that is not a param",
        """
        params: {ds: {type: date}}
        tasks:
          a:
            sh: [echo, "--day=${day}"]
        """,
        4,
        "a",
        "sh[1]",
        ("${day} names no run parameter", "known names: ds"),
    ),
    Case(
        "a malformed ${ in an argument list",
        """
        tasks:
          a: {sh: [echo, "${ds"]}
        """,
        2,
        "a",
        "sh[1]",
        ("does not start a reference such as ${name}", "write $${ for a literal"),
    ),
    Case(
        "a missing sql_file",
        """
        tasks:
          a: {sql_file: sql/missing.sql, conn: "sqlite:///x.db"}
        """,
        2,
        "a",
        "sql_file",
        ("cannot read 'sql/missing.sql'", "FileNotFoundError", "relative to the DAG file"),
    ),
    Case(
        "a bad cron string",
        """
        schedule: "0 25 * * *"
        params: {ds: {type: date}}
        tasks: {a: {sh: "true"}}
        """,
        1,
        None,
        "schedule",
        ("schedule='0 25 * * *' is not a valid 5-field cron expression",),
    ),
    Case(
        "a bad timezone",
        """
        tz: Mars/Olympus_Mons
        tasks: {a: {sh: "true"}}
        """,
        1,
        None,
        "tz",
        ("'Mars/Olympus_Mons' is not a known IANA timezone",),
    ),
    Case(
        "a bad start date",
        """
        start: 2024-13-01
        schedule: "@daily"
        params: {ds: {type: date}}
        tasks: {a: {sh: "true"}}
        """,
        1,
        None,
        "start",
        ("'2024-13-01' is not a date; write it as YYYY-MM-DD",),
    ),
    Case(
        "a schedule without a date param",
        """
        schedule: "@daily"
        tasks: {a: {sh: "true"}}
        """,
        1,
        None,
        "schedule",
        ("a scheduled DAG needs a parameter for the logical date",),
    ),
    Case(
        "a python module that does not import",
        """
        tasks:
          a: {python: "no_such_module_here:run"}
        """,
        2,
        "a",
        "python",
        ("does not import", "ModuleNotFoundError: No module named 'no_such_module_here'"),
    ),
    Case(
        "a python function that the module does not define",
        f"""
        tasks:
          a: {{python: "{OPS}:sumarize"}}
        """,
        2,
        "a",
        "python",
        ("has no function 'sumarize'; did you mean 'summarize'?",),
    ),
    Case(
        "a python file that raises while it loads",
        """
        tasks:
          a: {python: "broken.py:run"}
        """,
        2,
        "a",
        "python",
        ("does not import: loading 'broken.py' failed: ZeroDivisionError",),
    ),
    Case(
        "a python function whose argument nothing fills",
        f"""
        params: {{ds: {{type: date}}}}
        tasks:
          a: {{python: "{OPS}:needs_a_secret"}}
        """,
        3,
        "a",
        "python",
        ("its argument 'token' is neither a run parameter (ds) nor in args:",),
    ),
    Case(
        "args the function does not take",
        f"""
        params: {{ds: {{type: date}}}}
        tasks:
          a: {{python: "{OPS}:explode", args: {{retries: 3}}}}
        """,
        3,
        "a",
        "python",
        ("args: has 'retries', which the function does not take; its arguments: ds",),
    ),
    Case(
        "an option of another operator",
        """
        tasks:
          a: {python: "os:getcwd", conn: db}
        """,
        2,
        "a",
        "conn",
        ("applies only to sql: and sql_file: tasks, and this task is python:",),
    ),
    Case(
        "a param type that does not exist",
        """
        params: {ds: {type: timestamp}}
        tasks: {a: {sh: "true"}}
        """,
        1,
        None,
        "params.ds.type",
        ("'timestamp' is not allowed; use one of: date, datetime, str, int, float, bool",),
    ),
    Case(
        "a default of the wrong type",
        """
        params: {n: {type: int, default: many}}
        tasks: {a: {sh: "true"}}
        """,
        1,
        None,
        "params.n.default",
        ("'many' does not fit: parameter 'n'='many' is not an int",),
    ),
    Case(
        "a param name Python reserves",
        """
        params: {class: {type: str}}
        tasks: {a: {sh: "true"}}
        """,
        1,
        None,
        "params.class",
        ("'class' cannot name a parameter",),
    ),
    Case(
        "a value of the wrong type",
        """
        tasks:
          a: {sh: "true", retries: lots}
        """,
        2,
        "a",
        "retries",
        ("is 'lots', but must be a whole number",),
    ),
    Case(
        "a negative timeout",
        """
        tasks:
          a: {sh: "true", timeout: 0}
        """,
        2,
        "a",
        "timeout",
        ("0 is too small; give a number > 0",),
    ),
    Case(
        "a for_each name that is also a param",
        """
        params: {region: {type: str}}
        tasks:
          a: {sh: "true", for_each: {region: [eu, us]}}
        """,
        3,
        "a",
        "for_each.region",
        ("for_each name 'region' is also a run parameter",),
    ),
    Case(
        "an output template with an unknown field",
        """
        params: {ds: {type: date}}
        tasks:
          a: {sh: "true", output: "out/{day}.csv"}
        """,
        3,
        "a",
        "output",
        ("the field {day} names no run parameter", "known names: ds"),
    ),
    Case(
        "a webhook that is not http",
        """
        on_failure:
          - webhook: {url: "ftp://files.example.test/x"}
        tasks: {a: {sh: "true"}}
        """,
        2,
        None,
        "on_failure[0].webhook",
        ("give an http:// or https:// URL",),
    ),
    Case(
        "an email notifier without recipients",
        """
        on_success:
          - email: {host: localhost, port: 25, sender: "a@example.test"}
        tasks: {a: {sh: "true"}}
        """,
        2,
        None,
        "on_success[0].email.to",
        ("missing key 'to', which is required here",),
    ),
    Case(
        "a task name with a space",
        """
        tasks:
          load data: {sh: "true"}
        """,
        2,
        "load data",
        None,
        ("the name 'load data' is not allowed: task names use letters, digits",),
    ),
    Case(
        "a key written twice",
        """
        tasks:
          a: {sh: "true"}
          b: {sh: "true"}
          a: {sh: "false"}
        """,
        4,
        None,
        "a",
        ("written twice in the same mapping",),
    ),
    Case(
        "invalid YAML",
        """
        tasks:
          a:
            sh: "true"
           retries: 2
        """,
        4,
        None,
        None,
        ("not valid YAML",),
    ),
    Case(
        "a file that is not a mapping",
        """
        - sh: "true"
        """,
        1,
        None,
        None,
        ("the file must be a mapping of keys such as name:, params: and tasks:",),
    ),
    Case(
        "a file without tasks",
        """
        name: empty
        """,
        1,
        None,
        "tasks",
        ("missing key 'tasks', which is required here",),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_each_problem_is_one_located_error_that_says_what_is_allowed(
    case: Case, write: Write
) -> None:
    """The only problem of the file names file, line, task and key, and its message says why."""
    write("CREATE TABLE t (ds DATE);\n\nDELETE FROM t WHERE region = $region;\n", "sql/bad.sql")
    write("1 / 0\n", "broken.py")
    path = write(case.text)
    found = problems(path)
    assert len(found) == 1, [str(p) for p in found]
    (problem,) = found
    assert isinstance(problem, DagFileError)
    assert (problem.line, problem.task, problem.key) == (case.line, case.task, case.key)
    message = str(problem)
    assert "\n" not in message
    where = f"{path}:{case.line}" if case.line else str(path)
    assert message.startswith(where), message
    if case.task:
        assert f"task {case.task!r}" in message
    if case.key:
        assert f"key {case.key!r}" in message
    for fragment in case.says:
        assert fragment in message, (fragment, message)
    with pytest.raises(DagFileError) as raised:
        from_yaml(path)
    assert str(raised.value) == message


def test_a_cycle_is_a_cycle_error_naming_its_tasks_and_where_it_starts(write: Write) -> None:
    """depends_on loops raise CycleError (a DefinitionError) with the file, line and tasks."""
    path = write(
        """
        tasks:
          a: {sh: "true", depends_on: [c]}
          b: {sh: "true", depends_on: [a]}
          c: {sh: "true", depends_on: [b]}
        """
    )
    with pytest.raises(CycleError) as caught:
        from_yaml(path)
    assert isinstance(caught.value, DefinitionError)
    assert caught.value.cycle == ("a", "b", "c", "a")
    message = str(caught.value)
    assert message.startswith(f"{path}:2: task 'a', key 'depends_on': DAG 'dag' has a dependency")
    assert "a -> b -> c -> a" in message


def test_a_task_depending_on_itself_is_a_cycle(write: Write) -> None:
    """A self-dependency is the shortest cycle."""
    path = write("tasks:\n  a: {sh: 'true', depends_on: a}\n")
    (problem,) = problems(path)
    assert isinstance(problem, CycleError) and problem.cycle == ("a", "a")


def test_every_problem_of_a_file_is_reported_in_line_order(write: Write) -> None:
    """One pass finds all problems: validation keeps going after the first."""
    path = write(
        """
        tz: Nowhere/Special
        params: {ds: {type: date}}
        tasks:
          a: {sh: [echo, "${nope}"], retires: 1}
          b: {sql: "SELECT $also_nope", conn: missing}
          c: {sh: "true", depends_on: [zzz]}
        """
    )
    found = problems(path)
    assert [(p.line, p.task, p.key) for p in found] == [  # type: ignore[attr-defined]
        (1, None, "tz"),
        (4, "a", "retires"),
        (4, "a", "sh[1]"),
        (5, "b", "sql"),
        (5, "b", "conn"),
        (6, "c", "depends_on[0]"),
    ]


def test_a_missing_file_is_a_located_error(tmp_path: Path) -> None:
    """A path that does not exist is reported as such."""
    (problem,) = problems(tmp_path / "nope.yml")
    assert "cannot read the file" in str(problem) and "nope.yml" in str(problem)


def test_secrets_need_not_be_set_to_load_but_must_be_to_connect(
    write: Write, monkeypatch: pytest.MonkeyPatch
) -> None:
    """${VAR} in a connection or notifier is read when used: loading works without it."""
    monkeypatch.delenv("PK_TEST_DB_URL", raising=False)
    monkeypatch.delenv("PK_TEST_HOOK", raising=False)
    path = write(
        """
        connections: {db: "${PK_TEST_DB_URL}"}
        on_failure: [{webhook: {url: "${PK_TEST_HOOK}"}}]
        tasks: {a: {sql: "SELECT 1", conn: db}}
        """
    )
    dag = from_yaml(path)
    run = dag.run(raise_on_failure=False, executor="sequential")
    error = run.tasks["a"].error or ""
    assert (
        "connection 'db' reads the environment variable 'PK_TEST_DB_URL', which is not set" in error
    )
