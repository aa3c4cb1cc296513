"""The Dask executor: what running on a cluster adds to the executor contract.

Data passed between tasks must stay on the cluster; a worker that dies mid-task must
fail its attempt (and pipekit's retry policy, not Dask, decides what happens next);
the flights example must run there unchanged. The tests share one LocalCluster of two
worker processes (``dask_cluster`` in conftest.py).
"""

from __future__ import annotations

import os
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import pipekit
from pipekit import dag, task
from pipekit.stores.memory import MemoryStore

distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")

from pipekit.executors.dask import DaskExecutor  # noqa: E402 - after the importorskip

from .pipelines import reborn  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

WORKER_DEATH_LIMIT = 30.0
"""Seconds a run whose worker dies may take at most (a hang would take forever)."""


class Tracer:
    """A value that appends the id of every process that unpickles it to a log file."""

    def __init__(self, log: str, payload: bytes) -> None:
        self.log = log
        self.payload = payload

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.log, self.payload))


def _rebuild(log: str, payload: bytes) -> Tracer:
    with open(log, "a") as f:
        f.write(f"{os.getpid()}\n")
    return Tracer(log, payload)


def unpickled_in(log: str) -> list[int]:
    """The processes that unpickled a Tracer so far."""
    path = Path(log)
    return [int(line) for line in path.read_text().split()] if path.exists() else []


@task(persist=False)
def produce(log: str) -> Tracer:
    return Tracer(log, b"x" * 1_000_000)


@task
def consume(value: Tracer, log: str) -> dict[str, Any]:
    return {"pid": os.getpid(), "size": len(value.payload), "seen_by": unpickled_in(log)}


@dag
def handoff(log: str) -> None:
    consume(produce(log), log)


@pytest.fixture
def client(dask_cluster: Any) -> Iterator[Any]:
    """A client of the session's cluster; both workers are up again afterwards."""
    with distributed.Client(dask_cluster.scheduler_address, set_as_default=False) as c:
        yield c
        c.wait_for_workers(2, timeout=30)


def test_values_pass_between_tasks_without_visiting_the_pipekit_process(
    dask_cluster: Any, store: MemoryStore, tmp_path: Path
) -> None:
    """A downstream task gets its input on the cluster: this process never unpickled it first."""
    log = str(tmp_path / "unpickled")
    run = handoff.run(executor="dask", store=store, log=log)
    seen = run.tasks["consume"].result
    assert seen["size"] == 1_000_000
    assert seen["pid"] != os.getpid()  # it ran in a worker process
    assert os.getpid() not in seen["seen_by"]  # the value went worker to worker
    assert store.load_result(run.id, "produce") is None  # persist=False: never gathered


def check_died_then_retried(store: MemoryStore, run: pipekit.Run) -> None:
    """The first attempt failed as a dead worker, the retry succeeded in another process."""
    result = run.tasks["phoenix"]
    assert (result.state, result.attempts) == ("success", 2)
    assert result.result != os.getpid()
    first, second = store.attempts(run.id, "phoenix")
    assert first.state == "failed"
    assert first.error is not None
    assert first.error.startswith("WorkerDied: the Dask worker running this attempt died")
    assert second.state == "success"


def test_a_worker_killed_mid_task_fails_the_attempt_and_the_retry_succeeds(
    client: Any, store: MemoryStore, tmp_path: Path
) -> None:
    """SIGKILL of the worker running a task is a failed attempt; the task's retry runs it again."""
    started = time.monotonic()
    run = reborn.run(executor="dask", store=store, marker=str(tmp_path / "marker"))
    assert time.monotonic() - started < WORKER_DEATH_LIMIT
    check_died_then_retried(store, run)


def test_a_worker_death_fails_the_attempt_even_where_dask_would_reschedule(
    client: Any, store: MemoryStore, tmp_path: Path
) -> None:
    """On a scheduler that reschedules tasks of dead workers, the death still fails the attempt."""

    def set_allowed_failures(dask_scheduler: Any, value: int) -> int:
        old: int = dask_scheduler.allowed_failures
        dask_scheduler.allowed_failures = value
        return old

    old = client.run_on_scheduler(set_allowed_failures, value=3)
    try:
        run = reborn.run(executor="dask", store=store, marker=str(tmp_path / "marker"))
    finally:
        client.run_on_scheduler(set_allowed_failures, value=old)
    check_died_then_retried(store, run)


@pytest.fixture
def flights_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The flights example module, a temporary warehouse, and no broken dates."""
    pytest.importorskip("duckdb", reason="the examples extra (duckdb) is not installed")
    monkeypatch.delenv("FLIGHTS_BREAK", raising=False)
    monkeypatch.syspath_prepend(str(ROOT / "examples" / "dags"))
    import flights

    yield flights, tmp_path / "flights"


def test_the_flights_example_runs_on_a_cluster_of_worker_processes(
    dask_cluster: Any, flights_home: Any, tmp_path: Path
) -> None:
    """Two dates of the flights backfill on two workers load exactly the source's flights."""
    import duckdb

    flights, home = flights_home
    store = MemoryStore()
    with DaskExecutor(dask_cluster.scheduler_address) as executor:
        report = pipekit.backfill(
            flights.flights,
            "2013-02-07",
            "2013-02-08",
            store=store,
            executor=executor,
            progress=False,
            home=str(home),
        )
    assert report.ok, str(report)
    with zipfile.ZipFile(flights.source_dir() / "flights.csv.zip") as z:
        z.extract("flights.csv", tmp_path)
    con = duckdb.connect()
    expected = dict(
        con.execute(
            "SELECT strftime(make_date(year, month, day), '%Y-%m-%d'), count(*)"
            " FROM read_csv_auto(?) WHERE month = 2 AND day IN (7, 8) GROUP BY ALL",
            [str(tmp_path / "flights.csv")],
        ).fetchall()
    )
    con.close()
    warehouse = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        loaded = dict(
            warehouse.execute(
                "SELECT strftime(flight_date, '%Y-%m-%d'), count(*) FROM flights GROUP BY 1"
            ).fetchall()
        )
        mart = dict(
            warehouse.execute(
                "SELECT strftime(flight_date, '%Y-%m-%d'), sum(flights) FROM mart_daily GROUP BY 1"
            ).fetchall()
        )
    finally:
        warehouse.close()
    assert loaded == expected == mart
    assert len(expected) == 2
    for run in report.runs.values():
        assert all(t.state in ("success", "skipped") for t in run.tasks.values())
        assert run.tasks["validate"].result["flights"] == loaded[str(run.params["ds"])]


def test_an_executor_without_an_address_starts_and_closes_its_own_cluster(
    store: MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DaskExecutor() with no address starts a LocalCluster that fails tasks of dead workers."""
    from pipekit.executors.dask import ADDRESS_ENV

    monkeypatch.delenv(ADDRESS_ENV, raising=False)
    executor = DaskExecutor(
        cluster_options={"n_workers": 1, "threads_per_worker": 1, "processes": False}
    )
    try:
        run = handoff_free.run(executor=executor, store=store)
        assert run.tasks["plus_one"].result == 42
        assert executor.capacity == 1
        allowed = executor.client.run_on_scheduler(_allowed_failures)
        assert allowed == 0
    finally:
        executor.close()
    assert executor._own == []


@task
def forty_one() -> int:
    return 41


@task
def plus_one(x: int) -> int:
    return x + 1


@dag
def handoff_free() -> None:
    plus_one(forty_one())


def _allowed_failures(dask_scheduler: Any) -> int:
    value: int = dask_scheduler.allowed_failures
    return value


def test_an_address_and_a_client_together_are_refused() -> None:
    """Giving both a scheduler address and a client is an error, raised at once."""
    with pytest.raises(pipekit.PipekitError, match="not both"):
        DaskExecutor("tcp://127.0.0.1:1", client=object())  # type: ignore[arg-type]


def test_gather_passes_plain_values_through() -> None:
    """gather() returns values that are not futures (skipped tasks' outputs, say) as they are."""
    assert DaskExecutor().gather([1, 2]) == [1, 2]


@task
def lock_kind(lock: Any) -> str:
    return type(lock).__name__


@dag
def locked_argument() -> None:
    """lock_kind gets a lock as a literal argument: it cannot reach the cluster."""
    lock_kind(threading.Lock())
    forty_one()


def test_an_argument_that_cannot_be_pickled_fails_its_task_not_the_run(
    dask_cluster: Any, store: MemoryStore
) -> None:
    """Client.submit refusing a task's arguments fails that task; the rest of the run goes on."""
    run = locked_argument.run(executor="dask", store=store, raise_on_failure=False)
    failed = run.tasks["lock_kind"]
    assert failed.state == "failed"
    assert failed.error is not None
    assert failed.error.startswith("PipekitError: task 'lock_kind' could not be submitted")
    assert "cannot pickle '_thread.lock' object" in failed.error
    assert run.tasks["forty_one"].result == 41


def test_a_function_that_cannot_be_pickled_fails_its_task_not_the_run(
    dask_cluster: Any, store: MemoryStore
) -> None:
    """A closure over a lock cannot be sent to the cluster: its task fails with the reason."""
    lock = threading.Lock()

    def guarded() -> int:
        with lock:
            return 1

    guarded_task = task(guarded)

    @dag
    def closure() -> None:
        guarded_task()

    run = closure.run(executor="dask", store=store, raise_on_failure=False)
    failed = run.tasks["guarded"]
    assert failed.state == "failed"
    assert failed.error is not None
    assert failed.error.startswith("PipekitError: task 'guarded' cannot be sent to the Dask")


@pytest.fixture
def quick_connect() -> Iterator[None]:
    """Give up connecting to a scheduler after 50 ms."""
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "50ms"}):
        yield


@pytest.mark.usefixtures("quick_connect")
def test_an_unreachable_scheduler_is_a_pipekit_error_naming_the_address() -> None:
    """start() on an address where no scheduler listens raises PipekitError, not OSError."""
    executor = DaskExecutor("tcp://127.0.0.1:1")
    with pytest.raises(pipekit.PipekitError, match=r"'tcp://127\.0\.0\.1:1' \(given to Dask"):
        executor.start(lambda outcome: None)


@pytest.mark.usefixtures("quick_connect")
def test_an_unreachable_scheduler_in_the_environment_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """executor="dask" with $PIPEKIT_DASK_ADDRESS pointing nowhere says to check that variable."""
    from pipekit.executors.dask import ADDRESS_ENV

    monkeypatch.setenv(ADDRESS_ENV, "tcp://127.0.0.1:1")
    for executor in (DaskExecutor(), DaskExecutor.shared()):
        with pytest.raises(pipekit.PipekitError, match=r"\$PIPEKIT_DASK_ADDRESS"):
            executor.start(lambda outcome: None)


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"cluster_options": 5}, "cluster_options=5"),
        ({"cluster_options": [("n_workers", 1)]}, "cluster_options=[('n_workers', 1)]"),
        ({"cluster_options": {1: 2}}, "cluster_options={1: 2}"),
        ({"address": 8786}, "address=8786"),
        ({"address": ""}, "address=''"),
    ],
)
def test_bad_options_are_refused_naming_the_value(options: dict[str, Any], fragment: str) -> None:
    """DaskExecutor(...) with an option of the wrong kind raises PipekitError quoting it."""
    with pytest.raises(pipekit.PipekitError) as info:
        DaskExecutor(**options)
    assert fragment in str(info.value)
