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
