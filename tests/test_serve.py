"""The scheduler: serve() triggers each due interval exactly once, from DAGs, files and folders."""

from __future__ import annotations

import datetime as dt
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from pipekit import PipekitError, Run, dag, serve, task
from pipekit.serve import Scheduler
from pipekit.stores import MemoryStore, SQLiteStore
from pipekit.stores.base import RunStarted
from pipekit.testing import FakeClock
from tests.serve_dags import daily
from tests.serve_dags.daily import berlin, berlin_hourly, latest_interval, manual, nightly, pair

SERVE_DAGS = Path(__file__).parent / "serve_dags"


@pytest.fixture(autouse=True)
def clean_dags() -> Iterator[None]:
    """Forget the fixture DAGs' calls and hooks around every test."""
    daily.reset()
    yield
    daily.reset()


@pytest.fixture
def keep_sys_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Undo the folders that loading DAG files adds to sys.path."""
    monkeypatch.setattr(sys, "path", [*sys.path])


def at(moment: str) -> FakeClock:
    """A fake clock showing ``moment`` (ISO, UTC unless it has an offset)."""
    start = dt.datetime.fromisoformat(moment)
    if start.tzinfo is None:
        start = start.replace(tzinfo=dt.UTC)
    return FakeClock(start=start)


def iso(value: Any) -> str:
    """A logical date (a date, a datetime, or its recorded ISO string) as ISO text."""
    return value if isinstance(value, str) else value.isoformat()


def ds_of(runs: list[Run]) -> list[str]:
    """The ``ds`` of each run as ISO text, in the order given."""
    return [iso(r.params["ds"]) for r in runs]


def recorded(store: Any) -> list[tuple[str, str]]:
    """(DAG, ds) of every run in the history, sorted."""
    return sorted((r.dag, iso(r.params["ds"])) for r in store.list_runs())


def serve_in_thread(*targets: Any, **options: Any) -> tuple[threading.Thread, list[list[Run]]]:
    """Start serve(*targets, **options) in a thread; its result lands in the returned list."""
    out: list[list[Run]] = []
    thread = threading.Thread(
        target=lambda: out.append(serve(*targets, **options)), name="test-serve", daemon=True
    )
    thread.start()
    return thread, out


# -- catching up, exactly once ---------------------------------------------------------------


def test_once_catches_up_three_missed_days_in_order(memory_store: MemoryStore) -> None:
    """At 2024-01-04 00:30 a daily DAG started 2024-01-01 runs 01, 02 and 03, in that order."""
    runs = serve(nightly, store=memory_store, once=True, clock=at("2024-01-04T00:30"))
    days = ["2024-01-01", "2024-01-02", "2024-01-03"]
    assert daily.calls_of("nightly") == days
    assert ds_of(runs) == days
    assert all(isinstance(r, Run) and r.state == "success" and r.dag == "nightly" for r in runs)
    assert recorded(memory_store) == [("nightly", d) for d in days]


def test_a_second_pass_runs_nothing(memory_store: MemoryStore) -> None:
    """Intervals the history holds are never triggered again."""
    clock = at("2024-01-04T00:30")
    serve(nightly, store=memory_store, once=True, clock=clock)
    again = serve(nightly, store=memory_store, once=True, clock=clock)
    assert again == []
    assert len(daily.calls_of("nightly")) == 3
    assert len(memory_store.list_runs()) == 3


def test_a_restarted_scheduler_reading_the_same_sqlite_file_runs_nothing(tmp_path: Path) -> None:
    """A new Scheduler over the same SQLite history (a restart) finds every interval done."""
    clock = at("2024-01-04T00:30")
    first = SQLiteStore(tmp_path / "history.db")
    assert len(serve(nightly, store=first, once=True, clock=clock)) == 3
    first.close()

    reopened = SQLiteStore(tmp_path / "history.db")
    scheduler = Scheduler(
        [nightly], store=reopened, executor="threads", max_workers=None, clock=clock
    )
    assert scheduler.run(once=True, poll=1.0, stop=None) == []
    assert len(daily.calls_of("nightly")) == 3
    assert len(reopened.list_runs(dag="nightly")) == 3
    reopened.close()


def test_when_time_moves_on_only_the_newly_ended_interval_runs(memory_store: MemoryStore) -> None:
    """A day later, the next pass runs just the day that has ended since."""
    clock = at("2024-01-04T00:30")
    serve(nightly, store=memory_store, once=True, clock=clock)
    clock.advance(24 * 3600)
    runs = serve(nightly, store=memory_store, once=True, clock=clock)
    assert ds_of(runs) == ["2024-01-04"]
    assert daily.calls_of("nightly")[-1] == "2024-01-04"


def test_an_interval_is_due_only_once_it_has_ended(memory_store: MemoryStore) -> None:
    """One second before midnight the day is not due; at midnight it is."""
    before = serve(nightly, store=memory_store, once=True, clock=at("2024-01-03T23:59:59"))
    assert ds_of(before) == ["2024-01-01", "2024-01-02"]
    on_time = serve(nightly, store=memory_store, once=True, clock=at("2024-01-04T00:00"))
    assert ds_of(on_time) == ["2024-01-03"]


def test_nothing_runs_before_the_first_interval_has_ended(memory_store: MemoryStore) -> None:
    """Before start, and during the first interval, nothing is due."""
    assert serve(nightly, store=memory_store, once=True, clock=at("2023-12-25T12:00")) == []
    assert serve(nightly, store=memory_store, once=True, clock=at("2024-01-01T18:00")) == []
    assert daily.CALLS == []


def test_a_failed_run_counts_as_done_and_is_not_triggered_again(memory_store: MemoryStore) -> None:
    """Exactly once: a failed interval is recorded and a later pass does not run it again."""

    def fail_on_the_second(day: str) -> None:
        if day == "2024-01-02":
            raise ConnectionError("warehouse down")

    daily.HOOKS["nightly"] = fail_on_the_second
    clock = at("2024-01-04T00:30")
    runs = serve(nightly, store=memory_store, once=True, clock=clock)
    assert [(iso(r.params["ds"]), r.state) for r in runs] == [
        ("2024-01-01", "success"),
        ("2024-01-02", "failed"),
        ("2024-01-03", "success"),
    ]
    assert serve(nightly, store=memory_store, once=True, clock=clock) == []
    assert daily.calls_of("nightly").count("2024-01-02") == 1


def test_a_manual_run_already_recorded_for_an_interval_is_respected(
    memory_store: MemoryStore,
) -> None:
    """The scheduler reads the history: an interval run by hand is not triggered."""
    nightly.run(ds="2024-01-02", store=memory_store)
    daily.reset()
    runs = serve(nightly, store=memory_store, once=True, clock=at("2024-01-04T00:30"))
    assert ds_of(runs) == ["2024-01-01", "2024-01-03"]
    assert daily.calls_of("nightly") == ["2024-01-01", "2024-01-03"]


def test_without_catchup_only_the_latest_interval_runs(memory_store: MemoryStore) -> None:
    """catchup=False runs the latest ended interval, then skips straight to the next latest."""
    clock = at("2024-01-04T00:30")
    assert ds_of(serve(latest_interval, store=memory_store, once=True, clock=clock)) == [
        "2024-01-03"
    ]
    clock.advance(2 * 24 * 3600)
    assert ds_of(serve(latest_interval, store=memory_store, once=True, clock=clock)) == [
        "2024-01-05"
    ]
    assert daily.calls_of("latest_interval") == ["2024-01-03", "2024-01-05"]


def test_max_active_runs_bounds_concurrent_runs_and_still_catches_up(
    memory_store: MemoryStore,
) -> None:
    """max_active_runs=2: never more than two runs at once, yet one pass runs all five days."""
    lock = threading.Lock()
    going = 0
    peak = 0

    def overlap(day: str) -> None:
        nonlocal going, peak
        with lock:
            going += 1
            peak = max(peak, going)
        time.sleep(0.02)
        with lock:
            going -= 1

    daily.HOOKS["pair"] = overlap
    runs = serve(pair, store=memory_store, once=True, clock=at("2024-01-06T00:30"))
    days = [f"2024-01-0{d}" for d in range(1, 6)]
    assert peak == 2
    assert sorted(ds_of(runs)) == days
    assert sorted(daily.calls_of("pair")) == days
    assert set(daily.calls_of("pair")[:2]) == {"2024-01-01", "2024-01-02"}


def test_the_runs_returned_are_in_start_order(memory_store: MemoryStore) -> None:
    """serve() returns its runs in the order it started them, whatever order they ended in."""
    second_done = threading.Event()

    def first_ends_last(day: str) -> None:
        if day == "2024-01-02":
            second_done.set()
        else:
            second_done.wait(timeout=2)
            time.sleep(0.05)  # let the other run be recorded and returned first

    daily.HOOKS["pair"] = first_ends_last
    runs = serve(pair, store=memory_store, once=True, clock=at("2024-01-03T00:30"))
    assert ds_of(runs) == ["2024-01-01", "2024-01-02"]
    assert runs[0].ended_at is not None and runs[1].ended_at is not None
    assert runs[0].ended_at > runs[1].ended_at  # they did end the other way round


class HeldStartStore(MemoryStore):
    """A MemoryStore that holds back the start record of one date's run until it is told.

    The scheduler's second read of the history (its second pass, from the main thread)
    lets the held run go, then waits until that run has ended and left the scheduler's
    active set before returning what it read: the interleaving in which a run is neither
    in the history the scheduler read nor among its active runs.
    """

    def __init__(self, held: str) -> None:
        super().__init__()
        self.held = held
        self.scheduler: Scheduler | None = None
        self.release = threading.Event()
        self.reads = 0

    def record(self, changes: Any) -> None:
        if any(isinstance(c, RunStarted) and c.params.get("ds") == self.held for c in changes):
            self.release.wait(timeout=2)
        super().record(changes)

    def list_runs(
        self, dag: str | None = None, state: str | None = None, limit: int | None = None
    ) -> list[Run]:
        runs = super().list_runs(dag=dag, state=state, limit=limit)
        if threading.current_thread() is threading.main_thread() and dag == "pair":
            self.reads += 1
            if self.reads == 2 and self.scheduler is not None:
                self.release.set()
                deadline = time.monotonic() + 2
                while ("pair", self.held) in self.scheduler.active:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.001)
        return runs


def test_a_run_that_starts_and_ends_while_the_scheduler_reads_is_not_launched_twice() -> None:
    """Exactly once even when a run is recorded and ends in the middle of a pass."""
    store = HeldStartStore(held="2024-01-02")
    scheduler = Scheduler(
        [pair], store=store, executor="threads", max_workers=None, clock=at("2024-01-03T00:30")
    )
    store.scheduler = scheduler
    scheduler.run(once=True, poll=1.0, stop=None)
    assert sorted(daily.calls_of("pair")) == ["2024-01-01", "2024-01-02"]
    assert sorted(iso(r.params["ds"]) for r in store.list_runs()) == ["2024-01-01", "2024-01-02"]


def test_intervals_are_days_of_the_dags_timezone(memory_store: MemoryStore) -> None:
    """At 23:30 UTC on Jan 2 (00:30 Jan 3 in Berlin) the Berlin DAG has two ended days, UTC one."""
    clock = at("2024-01-02T23:30")
    runs = serve(berlin, nightly, store=memory_store, once=True, clock=clock)
    assert daily.calls_of("berlin") == ["2024-01-01", "2024-01-02"]
    assert daily.calls_of("nightly") == ["2024-01-01"]
    assert len(runs) == 3


def test_an_hourly_dag_runs_25_intervals_on_the_autumn_dst_day(memory_store: MemoryStore) -> None:
    """Both 02:00s of 2024-10-27 in Berlin are distinct intervals, each run exactly once."""
    clock = at("2024-10-27T23:00")  # midnight in Berlin (+01:00)
    runs = serve(berlin_hourly, store=memory_store, once=True, clock=clock)
    assert len(runs) == 25
    assert len(set(ds_of(runs))) == 25
    assert {"2024-10-27T02:00:00+02:00", "2024-10-27T02:00:00+01:00"} <= set(ds_of(runs))
    assert serve(berlin_hourly, store=memory_store, once=True, clock=clock) == []


def test_a_dag_without_a_schedule_is_ignored(memory_store: MemoryStore) -> None:
    """A manual DAG is never triggered; scheduled DAGs beside it still are."""
    clock = at("2024-01-03T00:30")
    assert serve(manual, store=memory_store, once=True, clock=clock) == []
    runs = serve(manual, nightly, store=memory_store, once=True, clock=clock)
    assert {r.dag for r in runs} == {"nightly"}
    assert daily.calls_of("manual") == []


def test_serve_restores_the_signal_handlers_it_installed(memory_store: MemoryStore) -> None:
    """After serve() returns, SIGINT and SIGTERM are handled as before."""
    before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    serve(nightly, store=memory_store, once=True, clock=at("2024-01-02T00:30"))
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


# -- bad arguments -----------------------------------------------------------------------------


def test_serve_without_arguments_is_an_error() -> None:
    """serve() with nothing to serve says what it needs."""
    with pytest.raises(PipekitError, match="needs DAGs"):
        serve()


def test_serve_of_a_missing_path_is_an_error_naming_it(tmp_path: Path) -> None:
    """A file or folder that does not exist is refused up front, quoted."""
    missing = tmp_path / "nowhere" / "dags.py"
    with pytest.raises(PipekitError, match="no such file or folder") as info:
        serve(missing, once=True)
    assert repr(str(missing)) in str(info.value)


def test_serve_refuses_an_executor_object_that_overlapping_runs_would_share() -> None:
    """One executor object serves one run at a time; the scheduler's runs overlap."""
    from pipekit.executors import ThreadsExecutor

    with pytest.raises(PipekitError, match=r"executor=.* serves one run at a time.*by name"):
        serve(nightly, once=True, executor=ThreadsExecutor())


def test_serve_of_something_that_is_not_a_dag_or_path_is_an_error() -> None:
    """Only DAGs, files and folders can be served."""
    with pytest.raises(PipekitError, match="not a DAG"):
        serve(42, once=True)  # type: ignore[arg-type]


def test_a_run_that_cannot_start_is_reported_once_and_not_relaunched(
    memory_store: MemoryStore,
) -> None:
    """A due run that fails to start (a required param has no value) is logged once per pass."""

    @task
    def regional(ds: dt.date, region: str) -> str:
        return f"{region}/{ds}"

    @dag(name="needs_region", schedule="@daily", start="2024-01-01")
    def needs_region(ds: dt.date, region: str) -> None:
        regional(ds, region)

    stop = threading.Event()
    with capture_logs() as logs:
        thread, out = serve_in_thread(
            needs_region, store=memory_store, once=True, clock=at("2024-01-02T00:30"), stop=stop
        )
        thread.join(timeout=2)
        hung = thread.is_alive()
        stop.set()  # end a relaunching loop, should there be one, before asserting
        thread.join(timeout=5)
    attempts = [e for e in logs if e["event"] == "scheduled_run_failed_to_start"]
    assert not hung
    assert out == [[]]
    assert len(attempts) == 1
    assert attempts[0]["logical_date"] == "2024-01-01"
    assert "ParamError" in attempts[0]["error"] and "region" in attempts[0]["error"]
    assert memory_store.list_runs() == []


# -- folders of DAG files ----------------------------------------------------------------------

DAG_FILE = """\
import datetime as dt

from pipekit import dag, task


@task
def work(ds: dt.date) -> str:
    return ds.isoformat()


@dag(name={name!r}, schedule="@daily", start={start!r})
def flow(ds: dt.date) -> None:
    work(ds)
"""


def write_dag(path: Path, name: str, start: str) -> Path:
    """Write a daily DAG file and move its mtime on, so a scheduler sees it as changed."""
    existed = path.exists()
    old = path.stat().st_mtime_ns if existed else 0
    path.write_text(DAG_FILE.format(name=name, start=start))
    if existed:
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, max(st.st_mtime_ns, old) + 1_000_000_000))
    return path


def folder_scheduler(folder: Path, store: Any, clock: FakeClock) -> Scheduler:
    """A Scheduler over one folder (kept across passes, as a long-running serve keeps it)."""
    return Scheduler([folder], store=store, executor="threads", max_workers=None, clock=clock)


def test_serve_runs_the_dags_of_a_folder(
    tmp_path: Path, memory_store: MemoryStore, keep_sys_path: None
) -> None:
    """Every DAG file of a folder is served; files starting with '_' are not DAG files."""
    write_dag(tmp_path / "alpha.py", "folder_alpha", "2024-01-02")
    (tmp_path / "sub").mkdir()
    write_dag(tmp_path / "sub" / "beta.py", "folder_beta", "2024-01-03")
    write_dag(tmp_path / "_private.py", "private", "2024-01-01")
    runs = serve(tmp_path, store=memory_store, once=True, clock=at("2024-01-04T00:30"))
    assert sorted((r.dag, iso(r.params["ds"])) for r in runs) == [
        ("folder_alpha", "2024-01-02"),
        ("folder_alpha", "2024-01-03"),
        ("folder_beta", "2024-01-03"),
    ]


def test_two_files_defining_one_dag_name_serve_neither_and_say_so(
    tmp_path: Path, memory_store: MemoryStore, keep_sys_path: None
) -> None:
    """Runs are recorded by DAG name: two DAGs called the same would share one history,
    so neither runs, and the error names both files; the other DAGs still run."""
    (tmp_path / "sales").mkdir()
    (tmp_path / "hr").mkdir()
    write_dag(tmp_path / "sales" / "daily.py", "clash_daily", "2024-01-03")
    write_dag(tmp_path / "hr" / "daily.py", "clash_daily", "2024-01-03")
    write_dag(tmp_path / "other.py", "clash_other", "2024-01-03")
    with capture_logs() as logs:
        runs = serve(tmp_path, store=memory_store, once=True, clock=at("2024-01-04T00:30"))
    assert [(r.dag, iso(r.params["ds"])) for r in runs] == [("clash_other", "2024-01-03")]
    [clash] = [e for e in logs if e["event"] == "dag_name_clash"]
    assert clash["dag"] == "clash_daily"
    assert sorted(Path(f).parent.name for f in clash["files"]) == ["hr", "sales"]


def test_a_single_dag_file_can_be_served(
    tmp_path: Path, memory_store: MemoryStore, keep_sys_path: None
) -> None:
    """A path to one file serves the DAGs in it."""
    path = write_dag(tmp_path / "alpha.py", "folder_alpha", "2024-01-03")
    runs = serve(str(path), store=memory_store, once=True, clock=at("2024-01-04T00:30"))
    assert [(r.dag, iso(r.params["ds"])) for r in runs] == [("folder_alpha", "2024-01-03")]


def test_a_changed_file_is_picked_up_between_passes(
    tmp_path: Path, memory_store: MemoryStore, keep_sys_path: None
) -> None:
    """Editing a DAG file (an earlier start) is seen on the next pass; only the new day runs."""
    clock = at("2024-01-04T00:30")
    path = write_dag(tmp_path / "alpha.py", "folder_alpha", "2024-01-02")
    scheduler = folder_scheduler(tmp_path, memory_store, clock)
    scheduler.run(once=True, poll=1.0, stop=None)
    assert recorded(memory_store) == [
        ("folder_alpha", "2024-01-02"),
        ("folder_alpha", "2024-01-03"),
    ]

    write_dag(path, "folder_alpha", "2024-01-01")
    with capture_logs() as logs:
        scheduler.run(once=True, poll=1.0, stop=None)
    assert recorded(memory_store) == [
        ("folder_alpha", "2024-01-01"),
        ("folder_alpha", "2024-01-02"),
        ("folder_alpha", "2024-01-03"),
    ]
    loaded = [e for e in logs if e["event"] == "dag_file_loaded"]
    assert [(Path(e["file"]).name, e["dags"]) for e in loaded] == [("alpha.py", ["folder_alpha"])]


def test_a_new_file_is_picked_up_and_unchanged_files_are_not_reloaded(
    tmp_path: Path, memory_store: MemoryStore, keep_sys_path: None
) -> None:
    """A DAG file added while serving is loaded on the next pass; the others are not re-read."""
    clock = at("2024-01-04T00:30")
    write_dag(tmp_path / "alpha.py", "folder_alpha", "2024-01-03")
    scheduler = folder_scheduler(tmp_path, memory_store, clock)
    scheduler.run(once=True, poll=1.0, stop=None)

    write_dag(tmp_path / "beta.py", "folder_beta", "2024-01-02")
    with capture_logs() as logs:
        scheduler.run(once=True, poll=1.0, stop=None)
    assert [Path(e["file"]).name for e in logs if e["event"] == "dag_file_loaded"] == ["beta.py"]
    assert recorded(memory_store) == [
        ("folder_alpha", "2024-01-03"),
        ("folder_beta", "2024-01-02"),
        ("folder_beta", "2024-01-03"),
    ]


def test_a_file_that_fails_to_import_is_logged_and_skipped(
    tmp_path: Path, memory_store: MemoryStore, keep_sys_path: None
) -> None:
    """A broken DAG file is logged (dag_file_failed) and skipped; once fixed it is served."""
    clock = at("2024-01-04T00:30")
    write_dag(tmp_path / "alpha.py", "folder_alpha", "2024-01-03")
    broken = tmp_path / "broken.py"
    broken.write_text("import pipekit\nraise RuntimeError('no warehouse credentials')\n")
    (tmp_path / "typo.py").write_text("def oops(:\n")
    scheduler = folder_scheduler(tmp_path, memory_store, clock)
    with capture_logs() as logs:
        scheduler.run(once=True, poll=1.0, stop=None)
    failed = {Path(e["file"]).name: e for e in logs if e["event"] == "dag_file_failed"}
    assert set(failed) == {"broken.py", "typo.py"}
    assert failed["broken.py"]["log_level"] == "error"
    assert "RuntimeError: no warehouse credentials" in failed["broken.py"]["error"]
    assert "SyntaxError" in failed["typo.py"]["error"]
    assert recorded(memory_store) == [("folder_alpha", "2024-01-03")]

    write_dag(broken, "folder_repaired", "2024-01-03")
    scheduler.run(once=True, poll=1.0, stop=None)
    assert ("folder_repaired", "2024-01-03") in recorded(memory_store)


def test_a_deleted_file_is_no_longer_served(
    tmp_path: Path, memory_store: MemoryStore, keep_sys_path: None
) -> None:
    """Removing a DAG file between passes stops its DAG from being triggered."""
    clock = at("2024-01-04T00:30")
    alpha = write_dag(tmp_path / "alpha.py", "folder_alpha", "2024-01-03")
    write_dag(tmp_path / "beta.py", "folder_beta", "2024-01-03")
    scheduler = folder_scheduler(tmp_path, memory_store, clock)
    scheduler.run(once=True, poll=1.0, stop=None)
    alpha.unlink()
    clock.advance(24 * 3600)
    scheduler.run(once=True, poll=1.0, stop=None)
    assert recorded(memory_store) == [
        ("folder_alpha", "2024-01-03"),
        ("folder_beta", "2024-01-03"),
        ("folder_beta", "2024-01-04"),
    ]


# -- the long-running loop: stop event and signals ------------------------------------------


def test_a_stop_event_set_from_a_task_ends_a_long_running_serve(
    memory_store: MemoryStore,
) -> None:
    """A fake clock advances by poll per loop; the day comes due, runs, and stop ends serve."""
    stop = threading.Event()
    daily.HOOKS["nightly"] = lambda day: stop.set()
    clock = at("2024-01-01T23:59:58")  # nothing due yet: the day ends two fake seconds later
    thread, out = serve_in_thread(nightly, store=memory_store, clock=clock, poll=1.0, stop=stop)
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert [ds_of(runs) for runs in out] == [["2024-01-01"]]
    assert out[0][0].state == "success"
    assert clock.sleeps[:2] == [1.0, 1.0]
    assert clock.now() >= dt.datetime(2024, 1, 2, tzinfo=dt.UTC)


def test_a_long_running_serve_keeps_going_until_its_stop_event_is_set(
    memory_store: MemoryStore,
) -> None:
    """Without once=True serve() does not return on its own; setting stop ends it promptly."""
    stop = threading.Event()
    clock = at("2023-06-01T00:00")  # months before start: nothing comes due meanwhile
    thread, out = serve_in_thread(nightly, store=memory_store, clock=clock, poll=0.001, stop=stop)
    thread.join(timeout=0.05)
    still_serving = thread.is_alive()
    stop.set()
    thread.join(timeout=5)
    assert still_serving
    assert not thread.is_alive()
    assert out == [[]]
    assert clock.sleeps and set(clock.sleeps) == {0.001}


SERVE_FOREVER = """import sys

from pipekit import serve
from pipekit.stores import SQLiteStore

runs = serve(sys.argv[1], store=SQLiteStore(sys.argv[2]), poll=0.05)
print("served", [(r.dag, str(r.state)) for r in runs], flush=True)
"""


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_serve_cleanly_after_the_running_run_ends(
    tmp_path: Path, signum: signal.Signals
) -> None:
    """SIGTERM/SIGINT mid-run: no new runs, the running one finishes and is recorded, exit 0."""
    db = tmp_path / "history.db"
    lines: queue.Queue[str] = queue.Queue()
    with subprocess.Popen(
        [sys.executable, "-c", SERVE_FOREVER, str(SERVE_DAGS / "sleepy.py"), str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        reader = threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout or ()])
        reader.start()
        try:
            deadline = time.monotonic() + 30
            line = ""
            while not line.startswith("started "):
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            proc.send_signal(signum)
            signalled = time.monotonic()
            code = proc.wait(timeout=10)
            waited = time.monotonic() - signalled
        finally:
            if proc.poll() is None:
                proc.kill()
            reader.join(timeout=5)
    rest = "".join(lines.queue)
    assert code == 0, rest
    assert waited < 5
    assert "scheduler_stopping" in rest
    assert "served [('sleepy', 'success')]" in rest

    store = SQLiteStore(db)
    runs = store.list_runs(dag="sleepy")
    store.close()
    assert len(runs) == 1
    assert runs[0].state == "success" and runs[0].ended_at is not None
    assert runs[0].tasks["nap"].state == "success"
    assert iso(runs[0].params["ds"]) == line.split()[1]


def test_an_interval_run_by_hand_with_another_offset_is_not_run_again(
    memory_store: MemoryStore,
) -> None:
    """Runs are matched by instant: 05:00Z by hand is New York's midnight interval."""
    calls: list[str] = []

    @task
    def note(ts: object) -> None:
        calls.append(str(ts))

    @dag(schedule="@daily", start="2024-01-03", tz="America/New_York")
    def ny_daily(ts: dt.datetime) -> None:
        note(ts)

    ny_daily.run(ts="2024-01-03T05:00:00Z", store=memory_store, executor="sequential")
    runs = serve(ny_daily, store=memory_store, once=True, clock=at("2024-01-04T06:00"))
    assert runs == []
    assert len(calls) == 1
