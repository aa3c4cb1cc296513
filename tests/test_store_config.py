"""Stores and result folders chosen by configuration: URLs, PIPEKIT_STORE, PIPEKIT_RESULTS.

A store can be named by URL wherever one is accepted (``open_store``, ``configure``,
the ``PIPEKIT_STORE`` variable, the CLI's ``--store``); a re-run on another machine
(here: another process) finds the saved results in the PostgreSQL history, or in a
shared folder when ``PIPEKIT_RESULTS`` names one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import pipekit
from pipekit.config import default_store
from pipekit.errors import StoreError
from pipekit.results import FileResults, StoreResults, results_for
from pipekit.stores import MemoryStore, PostgresStore, SQLiteStore, open_store
from tests import pg
from tests.dags.recoverable import recoverable

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A postgresql:// URL of a fresh schema on the test server, dropped afterwards."""
    schema = pg.new_schema("config")
    yield f"{pg.dsn_or_skip()}?schema={schema}"
    pg.drop_schema(schema)


def test_open_store_knows_each_scheme_and_a_plain_path(tmp_path: Path, postgres_url: str) -> None:
    """memory://, sqlite:/// (relative and absolute), plain paths and postgresql:// open."""
    assert isinstance(open_store("memory://"), MemoryStore)
    absolute = open_store(f"sqlite:///{tmp_path / 'a.db'}")
    assert isinstance(absolute, SQLiteStore) and absolute.path == tmp_path / "a.db"
    plain = open_store(str(tmp_path / "b.db"))
    assert isinstance(plain, SQLiteStore) and plain.path == tmp_path / "b.db"
    for url in (postgres_url, postgres_url.replace("postgresql://", "postgres://", 1)):
        store = open_store(url)
        assert isinstance(store, PostgresStore)
        assert store.schema == postgres_url.rsplit("schema=", 1)[1]
        store.close()


def test_an_unknown_scheme_is_refused_without_echoing_credentials() -> None:
    """An unknown scheme raises StoreError naming it and the known ones, not the URL's secret."""
    with pytest.raises(StoreError, match="unknown scheme 'redis'") as info:
        open_store("redis://user:s3cret@cache/0")
    assert "s3cret" not in str(info.value)
    assert "postgresql://" in str(info.value)


def test_configure_accepts_a_store_url(postgres_url: str) -> None:
    """configure(store=URL) opens the store at once; runs without store= are recorded there."""
    pipekit.configure(store=postgres_url)
    store = default_store()
    assert isinstance(store, PostgresStore)
    run = recoverable.run(ds="2024-03-01")
    assert store.get_run(run.id).state == "success"
    store.close()


def test_pipekit_store_names_the_default_store(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """PIPEKIT_STORE picks the default store (opened once per URL); configure() wins over it."""
    monkeypatch.setenv("PIPEKIT_STORE", f"sqlite:///{tmp_path / 'env.db'}")
    store = default_store()
    assert isinstance(store, SQLiteStore) and store.path == tmp_path / "env.db"
    assert default_store() is store
    mine = MemoryStore()
    pipekit.configure(store=mine)
    assert default_store() is mine
    pipekit.configure(store=None)
    monkeypatch.setenv("PIPEKIT_STORE", "mongodb://db/history")
    with pytest.raises(StoreError, match="unknown scheme 'mongodb'"):
        default_store()


def test_a_results_folder_is_chosen_by_configuration(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """By default results live in the history; PIPEKIT_RESULTS or configure(results=) a folder."""
    store = MemoryStore()
    assert isinstance(results_for(store), StoreResults)
    monkeypatch.setenv("PIPEKIT_RESULTS", str(tmp_path / "shared"))
    from_env = results_for(store)
    assert isinstance(from_env, FileResults) and from_env.root == tmp_path / "shared"
    pipekit.configure(results=tmp_path / "mine")
    try:
        chosen = results_for(store)
        assert isinstance(chosen, FileResults) and chosen.root == tmp_path / "mine"
    finally:
        pipekit.configure(results=None)


def rerun_elsewhere(run_id: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``pipekit rerun`` in a new process (another machine, as far as the history can tell)."""
    return subprocess.run(
        [sys.executable, "-m", "pipekit", "rerun", run_id],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The recoverable DAG's call log; its load task fails until RECOVER_BREAK is cleared."""
    log = tmp_path / "calls.log"
    monkeypatch.setenv("RECOVER_LOG", str(log))
    monkeypatch.setenv("RECOVER_BREAK", "load")
    return log


@pytest.mark.slow
def test_a_rerun_in_another_process_reads_results_from_the_postgres_history(
    postgres_url: str, calls: Path
) -> None:
    """A failed run's saved results are in the database: a rerun elsewhere runs load only."""
    store = PostgresStore(postgres_url)
    failed = recoverable.run(ds="2024-03-01", store=store, raise_on_failure=False)
    assert failed.tasks["load"].state == "failed"
    calls.write_text("")

    done = rerun_elsewhere(failed.id, {"PIPEKIT_STORE": postgres_url, "RECOVER_BREAK": ""})

    assert done.returncode == 0, done.stderr
    assert calls.read_text().split() == ["load", "2024-03-01"]
    again = store.get_run(failed.id)
    assert again.state == "success"
    assert again.tasks["load"].attempts == 2
    store.close()
    listed = subprocess.run(
        [sys.executable, "-m", "pipekit", "--store", postgres_url, "runs"],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert failed.id in listed.stdout


@pytest.mark.slow
def test_a_rerun_in_another_process_reads_results_from_a_shared_folder(
    postgres_url: str, calls: Path, tmp_path: Path
) -> None:
    """With PIPEKIT_RESULTS set, results go to that folder, and a rerun elsewhere reads them."""
    shared = tmp_path / "shared-results"
    pipekit.configure(results=shared)
    try:
        store = PostgresStore(postgres_url)
        failed = recoverable.run(ds="2024-03-01", store=store, raise_on_failure=False)
    finally:
        pipekit.configure(results=None)
    assert store.load_result(failed.id, "transform") is None  # not in the database
    assert (shared / failed.id / "transform.pkl").exists()
    calls.write_text("")

    done = rerun_elsewhere(
        failed.id,
        {"PIPEKIT_STORE": postgres_url, "PIPEKIT_RESULTS": str(shared), "RECOVER_BREAK": ""},
    )

    assert done.returncode == 0, done.stderr
    assert calls.read_text().split() == ["load", "2024-03-01"]
    assert store.get_run(failed.id).state == "success"
    store.close()


def test_importing_pipekit_and_its_plug_in_packages_imports_no_dask_or_psycopg() -> None:
    """pipekit, pipekit.executors and pipekit.stores load neither dask nor psycopg."""
    code = (
        "import sys, pipekit, pipekit.executors, pipekit.stores; "
        "print(pipekit.executors.make_executor('threads', None).__class__.__name__); "
        "print(','.join(m for m in ('dask', 'distributed', 'psycopg') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["ThreadsExecutor", ""]


def test_runs_accept_a_store_url_and_share_one_store_per_url(tmp_path: Path) -> None:
    """DAG.run(store="sqlite:///...") opens the store once; later runs with the URL reuse it."""
    from pipekit import dag, task

    @task
    def one() -> int:
        return 1

    @dag(name="url_store_dag")
    def g() -> None:
        one()

    url = f"sqlite:///{tmp_path / 'by-url.db'}"
    first = g.run(store=url)
    second = g.run(store=url)
    from pipekit.config import resolve_store

    store = resolve_store(url)
    assert {r.id for r in store.list_runs(dag="url_store_dag")} == {first.id, second.id}
    assert resolve_store(url) is store
    assert pipekit.rerun(first.id, store=url).id == first.id  # rerun takes the URL too
