"""Values as a DAG file gives them: typed param defaults, env as written, output paths."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from pipekit.declarative import from_yaml
from pipekit.stores import MemoryStore
from tests.declarative.conftest import Write


def test_param_defaults_arrive_converted_to_their_type(write: Write, tmp_path: Path) -> None:
    """A date default binds as DATE in SQL and reaches Python as a date; float 1 is 1.0."""
    pytest.importorskip("duckdb")
    import duckdb

    write(
        '''
        def show(ds, rate):
            """The values and their types."""
            return (ds, rate, type(rate).__name__)
        ''',
        "pk_values_mod.py",
    )
    path = write(
        """
        params:
          ds: {type: date, default: "2024-01-05"}
          rate: {type: float, default: 1}
        tasks:
          load:
            sql: CREATE TABLE t AS SELECT $ds AS d, $rate AS r
            conn: duckdb:///values.duckdb
          show: {python: "pk_values_mod:show"}
        """
    )
    run = from_yaml(path).run(store=MemoryStore())
    assert run.tasks["show"].result == (dt.date(2024, 1, 5), 1.0, "float")
    with duckdb.connect(str(tmp_path / "values.duckdb")) as db:
        rows = db.sql("SELECT typeof(d), typeof(r), d, r FROM t").fetchall()
    assert rows == [("DATE", "DOUBLE", dt.date(2024, 1, 5), 1.0)]


def test_env_values_and_list_arguments_are_passed_as_written(write: Write) -> None:
    """02134, 1.10, 1e3 and 0x1F reach the command as that text, not as 2134, 1.1, ..."""
    path = write(
        """
        defaults:
          env: {ZIP: 02134, ON: True}
        tasks:
          env:
            sh: printf '%s|' "$ZIP" "$VERSION" "$RATE" "$MASK" "$ON" "$NAME"
            env: {VERSION: 1.10, RATE: 1e3, MASK: 0x1F, NAME: "007"}
          args:
            sh: [printf, "%s|", 02134, 1.10, 1e3]
        """
    )
    run = from_yaml(path).run(store=MemoryStore())
    assert run.tasks["env"].result == "02134|1.10|1e3|0x1F|True|007|"
    assert run.tasks["args"].result == "02134|1.10|1e3|"


@pytest.mark.parametrize("executor", ["sequential", "processes"])
def test_an_output_starting_with_a_field_is_relative_to_the_dag_files_folder(
    write: Write, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, executor: str
) -> None:
    """{ds}/report.csv is in the DAG file's folder, not the current directory; a field
    that renders an absolute path ({base}/x.csv) stays absolute."""
    path = write(
        f"""
        params:
          ds: {{type: date}}
          base: {{type: str, default: "{tmp_path / "abs"}"}}
        tasks:
          report: {{sh: "echo made", output: "{{ds}}/report.csv"}}
          absolute: {{sh: "echo made", output: "{{base}}/x.csv"}}
          regional:
            for_each: {{region: [eu]}}
            sh: echo made
            output: "{{region}}/{{ds}}.csv"
        """
    )
    for done in ("2024-01-05/report.csv", "abs/x.csv", "eu/2024-01-05.csv"):
        (tmp_path / done).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / done).write_text("done\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    run = from_yaml(path).run(ds="2024-01-05", store=MemoryStore(), executor=executor)
    assert {t: (r.state.value, r.result) for t, r in run.tasks.items()} == {
        "report": ("skipped", f"{tmp_path}/2024-01-05/report.csv"),
        "absolute": ("skipped", f"{tmp_path}/abs/x.csv"),
        "regional[eu]": ("skipped", f"{tmp_path}/eu/2024-01-05.csv"),
    }
