"""Idempotent outputs: atomic_path, and @task(output=...) skipping what already exists."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

import pipekit
from pipekit import dag, task
from pipekit.stores import MemoryStore


def test_atomic_path_renames_into_place_only_on_success(tmp_path: Path) -> None:
    """The target appears whole after the block; a failing block leaves the old file alone."""
    target = tmp_path / "out" / "day.csv"
    with pipekit.atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_text("a,b\n1,2\n")
        assert not target.exists()
    assert target.read_text() == "a,b\n1,2\n"
    with pytest.raises(RuntimeError), pipekit.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "a,b\n1,2\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["day.csv"]


def test_atomic_path_replaces_a_directory(tmp_path: Path) -> None:
    """A directory written at the temporary path replaces the old directory."""
    target = tmp_path / "partition"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pipekit.atomic_path(target) as tmp:
        tmp.unlink()
        tmp.mkdir()
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]


def test_atomic_path_with_nothing_written_is_an_error(tmp_path: Path) -> None:
    """Removing the temporary file without writing the output is reported."""
    with (
        pytest.raises(pipekit.PipekitError, match="nothing was written"),
        pipekit.atomic_path(tmp_path / "x.csv") as tmp,
    ):
        tmp.unlink()
    assert not (tmp_path / "x.csv").exists()


def make_dag(root: Path, ran: list[str]) -> pipekit.DAG:
    """A DAG whose export task declares its output file."""

    @task(output=str(root / "sales" / "{ds}.csv"))
    def export(ds: dt.date) -> str:
        ran.append("export")
        out = pipekit.context().output
        assert out is not None
        with pipekit.atomic_path(out) as tmp:
            tmp.write_text(f"sales for {ds}\n")
        return out

    @task
    def publish(path: str) -> str:
        ran.append("publish")
        return Path(path).read_text()

    @dag(name="sales_export")
    def sales(ds: dt.date) -> None:
        publish(export(ds))

    return sales


def test_existing_output_skips_the_task_and_downstream_still_runs(tmp_path: Path) -> None:
    """The second run skips export with a reason; publish runs and receives the path."""
    ran: list[str] = []
    sales = make_dag(tmp_path, ran)
    store = MemoryStore()
    first = sales.run(ds="2024-01-05", store=store)
    assert ran == ["export", "publish"]
    assert first.tasks["export"].result == str(tmp_path / "sales" / "2024-01-05.csv")
    ran.clear()
    second = sales.run(ds="2024-01-05", store=store)
    assert ran == ["publish"]
    export = second.tasks["export"]
    assert export.state == "skipped" and export.attempts == 0
    assert export.error == f"output exists: {tmp_path / 'sales' / '2024-01-05.csv'}"
    assert second.tasks["publish"].result == "sales for 2024-01-05\n"
    assert second.state == "success"
    stored = store.get_run(second.id).tasks["export"]
    assert stored.state == "skipped" and stored.error is not None
    assert "output exists" in stored.error


def test_forcing_a_task_rewrites_its_output(tmp_path: Path) -> None:
    """rerun(tasks=[...]) runs a task even though its output exists."""
    ran: list[str] = []
    sales = make_dag(tmp_path, ran)
    store = MemoryStore()
    run = sales.run(ds="2024-01-06", store=store)
    ran.clear()
    pipekit.rerun(run.id, store=store, tasks=["export"])
    assert ran == ["export", "publish"]


def test_backfill_reprocess_all_forces_outputs(tmp_path: Path) -> None:
    """reprocess='all' re-runs every date afresh, outputs included."""
    ran: list[str] = []
    sales = make_dag(tmp_path, ran)
    store = MemoryStore()
    pipekit.backfill(sales, "2024-01-01", "2024-01-02", store=store, progress=False)
    assert ran.count("export") == 2
    ran.clear()
    pipekit.backfill(sales, "2024-01-01", "2024-01-02", store=store, progress=False)
    assert ran == []  # both dates succeeded: skipped
    report = pipekit.backfill(
        sales, "2024-01-01", "2024-01-02", store=store, progress=False, reprocess="all"
    )
    assert ran.count("export") == 2 and report.ok


def test_output_template_must_use_run_parameters() -> None:
    """An output field that is not a run parameter is refused when the DAG is defined."""

    @task(output="out/{day}.csv")
    def export() -> None:
        return None

    with pytest.raises(pipekit.DefinitionError, match=r"\{day\}.*ds"):

        @dag(name="bad_output")
        def g(ds: str) -> None:
            export()

    with pytest.raises(pipekit.DefinitionError, match="positional"):
        task(output="out/{}.csv")(lambda: None)


def test_output_template_accepts_strftime_specs(tmp_path: Path) -> None:
    """Date parameters render with format specs such as {ds:%Y/%m}."""

    @task(output=str(tmp_path / "{ds:%Y/%m}" / "{region}.csv"))
    def export() -> str | None:
        return pipekit.context().output

    @dag(name="spec_output")
    def g(ds: dt.date, region: str = "eu") -> None:
        export()

    run = g.run(ds="2024-02-09", store=MemoryStore())
    assert run.tasks["export"].result == str(tmp_path / "2024" / "02" / "eu.csv")


def test_atomic_path_output_gets_the_usual_file_mode(tmp_path: Path) -> None:
    """The renamed file is readable like any new file (umask), not private like a temp file."""
    import os

    target = tmp_path / "shared.csv"
    with pipekit.atomic_path(target) as tmp:
        tmp.write_text("x")
    mask = os.umask(0o022)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask
