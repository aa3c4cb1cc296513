"""problems() (``pipekit validate``) and from_yaml agree, and report every problem located."""

from __future__ import annotations

import pytest

from pipekit.declarative import DagFileError, from_yaml, problems
from tests.declarative.conftest import Write


@pytest.mark.parametrize(
    ("output", "says"),
    [
        (
            "out/{region:>4}-{region:03d}.csv",
            "the field {region:03d} cannot show the for_each value 'eu' (ValueError: "
            "Unknown format code 'd'",
        ),
        ("out/{region.upper}.csv", "the field {region.upper} names a method of the for_each"),
        ("out/{region!z}.csv", "the field {region!z} cannot show the for_each value 'eu'"),
    ],
    ids=["format spec", "method", "conversion"],
)
def test_an_output_field_that_cannot_show_a_for_each_value_is_a_located_problem(
    write: Write, output: str, says: str
) -> None:
    """A format spec (or attribute) that does not fit a for_each value, not a ValueError."""
    path = write(
        f"""
        tasks:
          export:
            for_each: {{region: [eu, us]}}
            sh: "true"
            output: "{output}"
        """
    )
    (problem,) = problems(path)
    assert isinstance(problem, DagFileError)
    assert (problem.line, problem.task, problem.key) == (5, "export", "output")
    assert says in problem.reason
    with pytest.raises(DagFileError, match=r"cannot show|names a method"):
        from_yaml(path)


def test_a_format_spec_that_fits_every_for_each_value_is_applied(write: Write) -> None:
    """{n:03d} with numbers and {region:>4} with text format the values into the path."""
    path = write(
        """
        tasks:
          export:
            for_each: {region: [eu], n: [7]}
            sh: "true"
            output: "out/{region:>4}-{n:03d}-{region!r}.csv"
        """
    )
    output = from_yaml(path).tasks["export[eu,7]"].task.output
    assert output == f"{path.parent}/out/  eu-007-'eu'.csv"


def test_validate_reports_what_only_building_the_dag_refuses(write: Write) -> None:
    """An hourly schedule with a date ds: the engine refuses it, so problems() does too."""
    path = write(
        """
        schedule: "@hourly"
        params:
          ds: {type: date}
        tasks:
          a: {sh: "true"}
        """
    )
    (problem,) = problems(path)
    assert isinstance(problem, DagFileError)
    assert (problem.line, problem.task, problem.key) == (1, None, "schedule")
    assert "runs more than once a day but parameter 'ds' is a date" in problem.reason
    with pytest.raises(DagFileError, match="runs more than once a day"):
        from_yaml(path)


def test_an_output_the_engine_refuses_is_located_at_the_tasks_output(write: Write) -> None:
    """The engine's output errors name a task: they point at its output:, not at schedule."""
    from pipekit.declarative._build import build
    from pipekit.declarative._compile import compile_source
    from pipekit.declarative._yaml import read_source

    path = write(
        """
        params:
          ds: {type: date}
        tasks:
          first: {sh: "true"}
          export:
            for_each: {region: [eu]}
            sh: "true"
            output: "out/{ds}.csv"
        """
    )
    plan = compile_source(read_source(path), [])
    assert plan is not None
    plan.tasks[1].options["output"] = "out/{day}.csv"  # what only the engine checks
    with pytest.raises(DagFileError) as caught:
        build(plan)
    assert (caught.value.line, caught.value.task, caught.value.key) == (8, "export", "output")
    assert "task 'export[eu]'" in caught.value.reason and "{day}" in caught.value.reason


def test_two_problems_at_one_place_are_both_reported(write: Write) -> None:
    """Two unknown $names in one sql: are two problems (each once, however often used);
    a mistake that the schema and a later rule both catch is reported once."""
    path = write(
        """
        tasks:
          a:
            sql: "SELECT $nope1, $nope2; SELECT $nope1"
            conn: "sqlite:///x.db"
          b: {sh: "true", retries: -1}
        """
    )
    found = [p.reason for p in problems(path) if isinstance(p, DagFileError)]
    assert len(found) == 3, found
    assert "the SQL's $nope1 names no run parameter" in found[0]
    assert "the SQL's $nope2 names no run parameter" in found[1]
    assert "-1 is too small" in found[2]
