"""from_yaml: a DAG file becomes an ordinary DAG, read safely and with YAML 1.2 types."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

import pipekit
from pipekit.declarative import DagFileError, from_yaml, problems
from pipekit.stores import MemoryStore
from tests.declarative.conftest import DAGS, Write


def test_a_dag_file_becomes_a_dag_with_typed_params_tasks_and_schedule() -> None:
    """Name, description, params (kinds and defaults), task order and edges, schedule, file."""
    dag = pipekit.from_yaml(DAGS / "report.yml")
    assert isinstance(dag, pipekit.DAG)
    assert dag.name == "yaml_report"
    assert dag.description == "A small daily report, one task of each operator"
    assert {n: (p.kind, p.required) for n, p in dag.params.items()} == {
        "ds": ("date", True),
        "region": ("str", False),
    }
    assert dag.params["region"].default == "eu"
    assert dag.order == ("load", "zones[north]", "zones[south]", "summarize", "publish")
    assert dag.tasks["summarize"].upstream == ("zones[north]", "zones[south]")
    assert dag.tasks["publish"].upstream == ("summarize",)
    assert dag.schedule is not None and dag.schedule.text == "@daily"
    assert dag.logical_param == "ds"
    assert dag.file == str((DAGS / "report.yml").resolve())
    assert dag.module.startswith("pipekit_dags.report_")


def test_the_name_defaults_to_the_file_stem_and_dag_options_apply(write: Write) -> None:
    """Without name: the stem names the DAG; tz, catchup and max_active_runs are set."""
    path = write(
        """
        schedule: "0 6 * * 1-5"
        start: 2024-03-01
        tz: Europe/Berlin
        catchup: false
        max_active_runs: 3
        params:
          when: {type: datetime}
        tasks:
          one: {sh: "true"}
        """,
        name="weekday_loads.yaml",
    )
    dag = from_yaml(path)
    assert dag.name == "weekday_loads"
    assert (dag.tz, dag.catchup, dag.max_active_runs, dag.logical_param) == (
        "Europe/Berlin",
        False,
        3,
        "when",
    )
    assert dag.start is not None and dag.start.isoformat() == "2024-03-01T00:00:00+01:00"


def test_defaults_apply_to_every_task_unless_it_sets_its_own(write: Write) -> None:
    """defaults: retries and retry_delay reach each task's policy; a task's own value wins."""
    path = write(
        """
        defaults: {retries: 2, retry_delay: 1.5, retry_backoff: 2, timeout: 30}
        tasks:
          a: {sh: "true"}
          b: {sh: "true", retries: 0, timeout: 5}
          c: {python: "os:getcwd", retries: 4}
        """
    )
    dag = from_yaml(path)
    a, b, c = (dag.tasks[t].task for t in ("a", "b", "c"))
    assert (a.retry.attempts, a.retry.delay, a.retry.backoff) == (3, 1.5, 2)
    assert b.retry.attempts == 1
    assert (c.retry.attempts, c.timeout) == (5, 30.0)
    # An sh task's process group is killed at its timeout; the loop's limit backs that up.
    assert a.fn.timeout == 30 and a.timeout is not None and a.timeout > 30


def test_for_each_expands_a_task_per_value_and_depends_on_waits_for_all(write: Write) -> None:
    """ids task[value]; several names expand to every combination; depends_on fans in."""
    path = write(
        """
        params: {ds: {type: date}}
        tasks:
          extract:
            for_each: {region: [eu, us], kind: [a, b]}
            sh: [echo, "${region}-${kind}"]
          single:
            for_each: {n: [1, 2]}
            sh: "echo $n"
            depends_on: [extract]
          last:
            sh: "true"
            depends_on: ["single[2]"]
        """
    )
    dag = from_yaml(path)
    assert dag.order[:4] == ("extract[eu,a]", "extract[eu,b]", "extract[us,a]", "extract[us,b]")
    assert dag.tasks["single[1]"].upstream == dag.order[:4]
    assert dag.tasks["last"].upstream == ("single[2]",)
    run = dag.run(ds="2024-01-02", store=MemoryStore())
    assert run.tasks["extract[us,b]"].result == "us-b"
    assert run.tasks["single[2]"].result == "2"


def test_yaml_1_2_types_no_is_text_and_leading_zeros_are_decimal(write: Write) -> None:
    """NO, yes and on stay strings; 010 is ten; a date stays ISO text (YAML 1.2 core schema)."""
    path = write(
        """
        params:
          country: {type: str, default: NO}
          n: {type: int, default: 010}
          since: {type: date, default: 2024-01-01}
        tasks:
          t:
            for_each: {answer: [yes, on, No]}
            sh: [echo, "${answer}"]
        """
    )
    dag = from_yaml(path)
    assert dag.params["country"].default == "NO"
    assert dag.params["n"].default == 10
    assert dag.params["since"].default == "2024-01-01"
    assert list(dag.tasks) == ["t[yes]", "t[on]", "t[No]"]


def test_loading_is_safe_no_tag_constructs_an_object(write: Write, tmp_path: Path) -> None:
    """A python/object tag is refused with the line; nothing it names runs."""
    marker = tmp_path / "pwned"
    path = write(
        f"""
        name: unsafe
        tasks:
          t:
            sh: !!python/object/apply:os.system ["touch {marker}"]
        """
    )
    with pytest.raises(DagFileError) as caught:
        from_yaml(path)
    assert caught.value.line == 4
    assert "not valid YAML" in str(caught.value)
    assert "python/object/apply:os.system" in str(caught.value)
    assert not marker.exists()


def test_from_yaml_raises_the_first_problem_and_notes_how_many_more(write: Write) -> None:
    """The first problem is raised; a note says how many others pipekit validate lists."""
    path = write(
        """
        tasks:
          a: {sh: "true", retires: 1}
          b: {sh: "true", depends_on: [c]}
        """
    )
    with pytest.raises(DagFileError) as caught:
        from_yaml(path)
    assert caught.value.task == "a" and caught.value.key == "retires"
    assert caught.value.__notes__ == [
        f"1 more problem(s) in this file: run `pipekit validate {path}`"
    ]
    assert [(p.task, p.key) for p in problems(path)] == [  # type: ignore[attr-defined]
        ("a", "retires"),
        ("b", "depends_on[0]"),
    ]


def test_import_pipekit_does_not_import_yaml_or_jsonschema_until_a_file_loads() -> None:
    """pipekit.from_yaml is a thin wrapper: the declarative subpackage loads on first call."""
    import subprocess
    import sys

    code = (
        "import sys, pipekit; before = [m for m in ('yaml', 'jsonschema') if m in sys.modules]; "
        f"pipekit.from_yaml({str(DAGS / 'report.yml')!r}); "
        "print(before, [m for m in ('yaml', 'jsonschema') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] ['yaml', 'jsonschema']"


def test_dates_of_params_reach_tasks_converted(write: Write) -> None:
    """A date param given as text arrives as a date (python:) and as ISO text (sh env)."""
    path = write(
        f"""
        params: {{ds: {{type: date}}, label: {{type: str, default: x}}}}
        tasks:
          py: {{python: "{DAGS / "yaml_ops.py"}:describe"}}
          sh: {{sh: 'echo "$ds"'}}
        """
    )
    run = from_yaml(path).run(ds="2024-02-29", store=MemoryStore())
    assert run.tasks["py"].result == "Date 2024-02-29 x -"
    assert run.tasks["sh"].result == "2024-02-29"
    assert isinstance(run.params["ds"], dt.date)


def test_output_templates_take_params_and_for_each_names_and_skip_existing_files(
    write: Write, tmp_path: Path
) -> None:
    """output: works as on @task: a task whose file exists is skipped, with the path."""
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "2024-01-05-eu.csv").write_text("done")
    path = write(
        """
        params: {ds: {type: date}}
        tasks:
          export:
            for_each: {region: [eu, us]}
            sh: 'echo "$region" > "out/$ds-$region.csv"'
            output: "out/{ds}-{region}.csv"
        """
    )
    dag = from_yaml(path)
    assert dag.tasks["export[us]"].task.output == f"{tmp_path}/out/{{ds}}-us.csv"
    run = dag.run(ds="2024-01-05", store=MemoryStore())
    assert run.tasks["export[eu]"].state == "skipped"
    assert run.tasks["export[us]"].state == "success"
    assert (tmp_path / "out" / "2024-01-05-eu.csv").read_text() == "done"
    assert (tmp_path / "out" / "2024-01-05-us.csv").read_text() == "us\n"


def test_an_empty_file_is_a_located_problem(write: Write) -> None:
    """A file with nothing but comments is not a DAG."""
    path = write("# nothing yet\n")
    (problem,) = problems(path)
    assert str(problem) == (
        f"{path}: the file must be a mapping of keys such as name:, params: and tasks:"
    )


def test_email_options_read_the_environment_when_the_notifier_fires() -> None:
    """${VAR} in email options (a port, a password) is read at build time, and typed."""
    from pipekit.declarative.notifiers import FileNotifier
    from pipekit.notify import Email

    notifier = FileNotifier(
        "email",
        {
            "host": "smtp.example.test",
            "port": "${SMTP_PORT:-25}",
            "sender": "etl@example.test",
            "to": ["ops@example.test"],
            "username": "etl",
            "password": "${SMTP_PASSWORD}",
        },
        "dag.yml:3",
    )
    email = notifier.build({"SMTP_PORT": "587", "SMTP_PASSWORD": "pw"})
    assert isinstance(email, Email)
    assert (email.port, email.password, email.to) == (587, "pw", ["ops@example.test"])
    with pytest.raises(pipekit.PipekitError, match="'SMTP_PASSWORD', which is not set"):
        notifier.build({})
    assert repr(notifier) == "FileNotifier(email at dag.yml:3)"


def test_the_schema_beside_the_example_is_what_pipekit_schema_prints() -> None:
    """examples/dags/pipekit-dag.schema.json (the editor's schema) is kept up to date."""
    import json

    from pipekit.declarative import json_schema

    shipped = DAGS.parents[2] / "examples" / "dags" / "pipekit-dag.schema.json"
    assert json.loads(shipped.read_text()) == json_schema(), (
        "regenerate it: pipekit schema > examples/dags/pipekit-dag.schema.json"
    )
