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
