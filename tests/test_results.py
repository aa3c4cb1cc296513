"""Result stores: values of succeeded tasks kept for re-runs."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import pipekit
from pipekit.results import (
    MISSING,
    FileResults,
    MemoryResults,
    ResultStore,
    StoreResults,
    results_for,
)
from pipekit.stores import MemoryStore, SQLiteStore


@pytest.fixture(params=["files", "memory"])
def results(request: pytest.FixtureRequest, tmp_path: Path) -> ResultStore:
    """Each result store implementation."""
    return FileResults(tmp_path / "results") if request.param == "files" else MemoryResults()


def test_save_load_replace_and_delete(results: ResultStore) -> None:
    """A saved value loads back, saving again replaces it, delete forgets the run."""
    assert isinstance(results, ResultStore)
    assert results.load("r1", "t") is MISSING
    assert results.save("r1", "t", {"rows": [1, 2]})
    assert results.load("r1", "t") == {"rows": [1, 2]}
    assert results.save("r1", "t", None)
    assert results.load("r1", "t") is None
    results.delete("r1")
    assert results.load("r1", "t") is MISSING


def test_prune_forgets_runs_written_before_the_cutoff(results: ResultStore) -> None:
    """prune(before) removes older runs and keeps newer ones."""
    results.save("old", "t", 1)
    assert results.prune(datetime.now(UTC) - timedelta(hours=1)) == 0
    assert results.prune(datetime.now(UTC) + timedelta(seconds=1)) == 1
    assert results.load("old", "t") is MISSING


def test_file_results_refuse_unpicklable_values_and_write_atomically(tmp_path: Path) -> None:
    """An unpicklable value is not saved (False); no temporary files are left behind."""
    files = FileResults(tmp_path)
    lock = threading.Lock()
    assert files.save("r", "t", lock) is False
    assert files.load("r", "t") is MISSING
    assert files.save("r", "t", lambda x: x + 1)  # cloudpickle handles lambdas
    assert files.load("r", "t")(1) == 2
    assert [p.name for p in (tmp_path / "r").iterdir()] == ["t.pkl"]


def test_damaged_file_reads_as_missing(tmp_path: Path) -> None:
    """A truncated result file makes the task run again rather than crash a re-run."""
    files = FileResults(tmp_path)
    files.save("r", "t", [1, 2, 3])
    (tmp_path / "r" / "t.pkl").write_bytes(b"\x80\x05garbage")
    assert files.load("r", "t") is MISSING


def test_results_live_in_the_history_by_default(tmp_path: Path) -> None:
    """SQLite and memory histories keep results themselves; configure() overrides."""
    sqlite = SQLiteStore(tmp_path / "h.db")
    beside = results_for(sqlite)
    assert isinstance(beside, StoreResults) and beside.store is sqlite
    assert results_for(sqlite) is beside
    memory = MemoryStore()
    in_memory = results_for(memory)
    assert isinstance(in_memory, StoreResults) and in_memory.store is memory
    chosen = MemoryResults()
    pipekit.configure(results=chosen)
    try:
        assert results_for(sqlite) is chosen
    finally:
        pipekit.configure(results=None)
    assert results_for(sqlite) is beside
    with pytest.raises(pipekit.PipekitError, match="ResultStore"):
        pipekit.configure(results="nope")  # type: ignore[arg-type]
    sqlite.close()


def test_results_in_the_store_round_trip_and_prune_by_run_start(tmp_path: Path) -> None:
    """StoreResults pickles through the history and prunes runs that started before a cutoff."""
    from pipekit import dag, task

    @task
    def make() -> dict[str, int]:
        return {"rows": 3}

    @task
    def use(x: dict[str, int]) -> int:
        return x["rows"]

    @dag(name="store_results")
    def g() -> None:
        use(make())

    store = SQLiteStore(tmp_path / "h.db")
    run = g.run(store=store)
    results = results_for(store)
    assert results.load(run.id, "make") == {"rows": 3}
    assert results.load(run.id, "use") is MISSING  # no task receives use's value
    assert results.save(run.id, "use", threading.Lock()) is False
    assert results.prune(datetime.now(UTC) - timedelta(hours=1)) == 0
    assert results.prune(datetime.now(UTC) + timedelta(seconds=1)) == 1
    assert results.load(run.id, "make") is MISSING
    store.close()


def test_configured_file_results_are_used_by_runs(tmp_path: Path) -> None:
    """configure(results=FileResults(dir)) sends saved values to files instead."""
    from pipekit import dag, task

    @task
    def source() -> int:
        return 1

    @task
    def sink(x: int) -> int:
        return x

    @dag(name="file_results")
    def g() -> None:
        sink(source())

    pipekit.configure(results=FileResults(tmp_path / "shared"))
    try:
        run = g.run(store=MemoryStore())
    finally:
        pipekit.configure(results=None)
    assert [p.name for p in (tmp_path / "shared" / run.id).iterdir()] == ["source.pkl"]


def test_only_values_another_task_receives_are_saved(tmp_path: Path) -> None:
    """A leaf task's value and an ordering-only edge's value are not written."""
    from pipekit import dag, task

    @task
    def source() -> int:
        return 1

    @task
    def leaf(x: int) -> int:
        return x + 1

    @task
    def side() -> int:
        return 7

    @dag(name="saving")
    def g() -> None:
        s = side()
        leaf(source()) >> s

    store = SQLiteStore(tmp_path / "h.db")
    run = g.run(store=store)
    saved = [t for t in g.order if store.load_result(run.id, t) is not None]
    assert saved == ["source"]
    store.close()
