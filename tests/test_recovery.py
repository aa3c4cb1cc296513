"""pipekit.rerun: the unfinished tasks of a recorded run, again, under the same id."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

import pipekit
from pipekit import dag, task
from pipekit.stores import MemoryStore, SQLiteStore
from tests.dags.recoverable import recoverable

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A call log the recoverable DAG appends to; RECOVER_BREAK is cleared after the test."""
    log = tmp_path / "calls.log"
    monkeypatch.setenv("RECOVER_LOG", str(log))
    monkeypatch.delenv("RECOVER_BREAK", raising=False)
    yield log


def read(log: Path) -> list[str]:
    """The task names logged so far, then clear the log."""
    names = [line.split()[0] for line in log.read_text().splitlines()] if log.exists() else []
    log.write_text("")
    return names


def test_rerun_executes_only_the_unfinished_tasks(
    calls: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After load fails, rerun runs load only, with the saved transform result, same run id."""
    store = SQLiteStore(calls.parent / "h.db")
    monkeypatch.setenv("RECOVER_BREAK", "load")
    failed = recoverable.run(ds="2024-03-01", store=store, raise_on_failure=False)
    assert failed.state == "failed"
    assert sorted(read(calls)) == ["audit", "extract", "load", "transform"]

    monkeypatch.delenv("RECOVER_BREAK")
    again = pipekit.rerun(failed.id, store=store)
    assert read(calls) == ["load"]
    assert again.id == failed.id
    assert again.state == "success"
    assert again.params == failed.params
    assert again.started_at == store.get_run(failed.id).started_at
    assert again.tasks["load"].result == 10 + 20 + 30
    assert again.tasks["load"].attempts == 2
    assert again.tasks["extract"].attempts == 1
    stored = store.get_run(failed.id)
    assert stored.state == "success" and stored.ended_at is not None
    assert [(a.number, a.state) for a in store.attempts(failed.id, "load")] == [
        (1, "failed"),
        (2, "success"),
    ]
    assert len(store.list_runs()) == 1


def test_rerun_of_upstream_failed_tasks_runs_the_failed_one_and_its_descendants(
    calls: Path, monkeypatch: pytest.MonkeyPatch, memory_store: MemoryStore
) -> None:
    """A failed extract makes transform and load upstream_failed; rerun runs all three."""
    monkeypatch.setenv("RECOVER_BREAK", "extract")
    failed = recoverable.run(ds="2024-03-02", store=memory_store, raise_on_failure=False)
    assert failed.tasks["load"].state == "upstream_failed"
    read(calls)
    monkeypatch.delenv("RECOVER_BREAK")
    again = pipekit.rerun(failed.id, store=memory_store)
    assert read(calls) == ["extract", "transform", "load"]
    assert again.state == "success"


def test_forcing_a_task_reruns_it_and_optionally_its_descendants(
    calls: Path, memory_store: MemoryStore
) -> None:
    """tasks=[...] re-runs succeeded tasks; downstream=False leaves their descendants alone."""
    done = recoverable.run(ds="2024-03-03", store=memory_store)
    read(calls)
    pipekit.rerun(done.id, store=memory_store, tasks=["transform"])
    assert read(calls) == ["transform", "load"]
    pipekit.rerun(done.id, store=memory_store, tasks=["transform"], downstream=False)
    assert read(calls) == ["transform"]
    assert memory_store.get_run(done.id).tasks["transform"].attempts == 3


def test_rerun_of_a_successful_run_does_nothing(calls: Path, memory_store: MemoryStore) -> None:
    """Nothing to redo: the recorded run is returned and nothing executes."""
    done = recoverable.run(ds="2024-03-04", store=memory_store)
    read(calls)
    again = pipekit.rerun(done.id, store=memory_store)
    assert read(calls) == []
    assert again.state == "success" and again.id == done.id


def test_persist_false_reruns_the_upstream_when_its_value_is_needed(
    memory_store: MemoryStore,
) -> None:
    """An unsaved upstream result is recomputed when a re-run task needs it."""
    ran: list[str] = []
    broken = {"consume"}

    @task(persist=False)
    def produce() -> int:
        ran.append("produce")
        return 41

    @task
    def consume(x: int) -> int:
        ran.append("consume")
        if "consume" in broken:
            raise ValueError("not yet")
        return x + 1

    @dag(name="persist_false_dag")
    def g() -> None:
        consume(produce())

    failed = g.run(store=memory_store, raise_on_failure=False)
    ran.clear()
    broken.clear()
    again = pipekit.rerun(failed.id, store=memory_store)
    assert ran == ["produce", "consume"]
    assert again.tasks["consume"].result == 42
    assert again.tasks["produce"].attempts == 2


def test_retries_false_runs_each_task_once(memory_store: MemoryStore) -> None:
    """rerun(retries=False) ignores the task's retry policy."""
    attempts: list[int] = []

    @task(retries=3)
    def flaky() -> None:
        attempts.append(pipekit.context().attempt)
        raise ConnectionError("down")

    @dag(name="flaky_rerun_dag")
    def g() -> None:
        flaky()

    failed = g.run(store=memory_store, raise_on_failure=False, executor="sequential")
    assert attempts == [1, 2, 3, 4]
    again = pipekit.rerun(failed.id, store=memory_store, retries=False, raise_on_failure=False)
    assert attempts == [1, 2, 3, 4, 5]
    assert again.tasks["flaky"].attempts == 5
    with pytest.raises(pipekit.RunFailed):
        pipekit.rerun(failed.id, store=memory_store)
    assert attempts[-4:] == [6, 7, 8, 9]


def test_unknown_forced_task_and_unknown_run_are_clear_errors(memory_store: MemoryStore) -> None:
    """A misspelt task or run id is named in a PipekitError."""
    done = recoverable.run(ds="2024-03-05", store=memory_store)
    with pytest.raises(pipekit.PipekitError, match="'laod'"):
        pipekit.rerun(done.id, store=memory_store, tasks=["laod"])
    with pytest.raises(pipekit.StoreError, match="'nope'"):
        pipekit.rerun("nope", store=memory_store)


def test_a_changed_dag_reruns_tasks_that_exist_and_refuses_vanished_ones(
    memory_store: MemoryStore,
) -> None:
    """New tasks run; a failed task that no longer exists is a PipekitError naming it."""
    fail = {"b"}

    @task
    def a() -> int:
        return 1

    @task
    def b(x: int) -> int:
        if "b" in fail:
            raise ValueError("b broke")
        return x

    @dag(name="changing")
    def v1() -> None:
        b(a())

    failed = v1.run(store=memory_store, raise_on_failure=False)

    @task
    def c(x: int) -> int:
        return x + 100

    @dag(name="changing")
    def v2() -> None:
        c(b(a()))

    fail.clear()
    again = pipekit.rerun(failed.id, store=memory_store)
    assert again.tasks["c"].result == 101
    assert list(memory_store.get_run(failed.id).tasks) == ["a", "b", "c"]

    fail.add("b")
    failed2 = v2.run(store=memory_store, raise_on_failure=False)

    @dag(name="changing")
    def v3() -> None:
        a()

    with pytest.raises(pipekit.PipekitError, match=r"'b'.*no longer in DAG 'changing'"):
        pipekit.rerun(failed2.id, store=memory_store)
    assert v3.name == "changing"


def _python(code: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_rerun_from_a_new_process_imports_the_recorded_module(calls: Path) -> None:
    """A run recorded by one process is re-run by another, which imports the DAG's module."""
    db = calls.parent / "shared.db"
    env = {**os.environ, "RECOVER_BREAK": "load", "PYTHONPATH": str(ROOT)}
    first = _python(
        f"""
        from pipekit.stores import SQLiteStore
        from tests.dags.recoverable import recoverable
        run = recoverable.run(ds="2024-04-01", store=SQLiteStore({str(db)!r}),
                              raise_on_failure=False)
        print(run.id)
        """,
        env,
        ROOT,
    )
    assert first.returncode == 0, first.stderr
    run_id = first.stdout.strip().splitlines()[-1]
    read(calls)
    env.pop("RECOVER_BREAK")
    env.pop("PYTHONPATH")  # the recorded file locates the project root
    second = _python(
        f"""
        import pipekit
        from pipekit.stores import SQLiteStore
        run = pipekit.rerun({run_id!r}, store=SQLiteStore({str(db)!r}))
        print(run.state, run.tasks["load"].result)
        """,
        env,
        calls.parent,
    )
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip().splitlines()[-1] == "success 60"
    assert read(calls) == ["load"]


def test_rerun_from_a_new_process_loads_a_script_by_its_path(tmp_path: Path) -> None:
    """A DAG defined in a script (module __main__) is found again through its file."""
    script = tmp_path / "nightly.py"
    marker = tmp_path / "fixed"
    script.write_text(
        textwrap.dedent(
            f"""
            import pathlib
            from pipekit import dag, task
            from pipekit.stores import SQLiteStore

            @task
            def fetch():
                return 5

            @task
            def store_it(x):
                if not pathlib.Path({str(marker)!r}).exists():
                    raise OSError("disk full")
                return x * 2

            @dag
            def nightly():
                store_it(fetch())

            if __name__ == "__main__":
                run = nightly.run(store=SQLiteStore({str(tmp_path / "h.db")!r}),
                                  raise_on_failure=False)
                print(run.id)
            """
        )
    )
    first = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=True
    )
    run_id = first.stdout.strip().splitlines()[-1]
    marker.touch()
    second = _python(
        f"""
        import pipekit
        from pipekit.stores import SQLiteStore
        run = pipekit.rerun({run_id!r}, store=SQLiteStore({str(tmp_path / "h.db")!r}))
        print(run.state, run.tasks["store_it"].result, run.tasks["fetch"].attempts)
        """,
        dict(os.environ),
        tmp_path,
    )
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip().splitlines()[-1] == "success 10 1"


def test_missing_dag_location_is_a_clear_error(memory_store: MemoryStore) -> None:
    """A recorded run whose DAG cannot be found says where it looked."""
    from pipekit.stores import RunEnded, RunStarted
    from pipekit.testing import FakeClock

    now = FakeClock().now()
    memory_store.record(
        [
            RunStarted("r-ghost", "ghost_dag", {}, ["t"], now, "no_such_module_xyz", None),
            RunEnded("r-ghost", pipekit.State.FAILED, now),
        ]
    )
    with pytest.raises(pipekit.PipekitError, match=r"cannot find DAG 'ghost_dag'.*no_such_module"):
        pipekit.rerun("r-ghost", store=memory_store)


def test_prune_removes_old_results_and_rerun_recomputes(
    calls: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After prune, a re-run recomputes the upstream values it needs."""
    store = SQLiteStore(calls.parent / "p.db")
    monkeypatch.setenv("RECOVER_BREAK", "load")
    failed = recoverable.run(ds="2024-05-01", store=store, raise_on_failure=False)
    saved = [t for t in recoverable.order if store.load_result(failed.id, t) is not None]
    assert saved == ["extract", "transform"]  # load failed; audit's value feeds no task
    assert pipekit.prune(older_than=timedelta(days=1), store=store) == 0
    assert pipekit.prune(older_than=timedelta(0), store=store) == 1
    assert store.load_result(failed.id, "transform") is None
    read(calls)
    monkeypatch.delenv("RECOVER_BREAK")
    again = pipekit.rerun(failed.id, store=store)
    assert read(calls) == ["extract", "transform", "load"]
    assert again.state == "success"
    with pytest.raises(pipekit.PipekitError, match="timedelta"):
        pipekit.prune(older_than=30, store=store)  # type: ignore[arg-type]


def test_a_rerun_gets_datetimes_in_the_dag_zone_as_the_first_run_did(
    memory_store: MemoryStore,
) -> None:
    """The recorded "+01:00" of a Berlin datetime is read back as Europe/Berlin, so date
    arithmetic in the re-run (a day later, across DST) gives the first run's answer."""
    seen: list[tuple[str, str]] = []
    failing = {"on": True}

    @task
    def window(ts: object) -> None:
        seen.append((str(ts.tzinfo), ts.add(days=1).isoformat()))  # type: ignore[attr-defined]
        if failing["on"]:
            raise ConnectionError("warehouse down")

    @dag(tz="Europe/Berlin")
    def berlin_daily(ts: datetime) -> None:
        window(ts)

    run = berlin_daily.run(
        ts="2024-03-31T00:00:00", store=memory_store, raise_on_failure=False, executor="sequential"
    )
    failing["on"] = False
    pipekit.rerun(run.id, store=memory_store, executor="sequential")
    assert seen == [("Europe/Berlin", "2024-04-01T00:00:00+02:00")] * 2


def test_a_task_run_again_shows_the_times_of_its_new_execution(memory_store: MemoryStore) -> None:
    """A re-run a day later: the task's start is the re-run's, not the failed run's, so
    its duration is the work it did, not the wait; the attempt history keeps both."""
    from pipekit.testing import FakeClock

    failing = {"on": True}

    @task
    def slow_load() -> int:
        if failing["on"]:
            raise ConnectionError("warehouse down")
        return 1

    @dag
    def nightly_load() -> None:
        slow_load()

    clock = FakeClock()
    run = nightly_load.run(
        store=memory_store, executor="sequential", clock=clock, raise_on_failure=False
    )
    first_start = run.tasks["slow_load"].started_at
    clock.advance(86_400)
    failing["on"] = False
    again = pipekit.rerun(run.id, store=memory_store, executor="sequential", clock=clock)
    task_run = again.tasks["slow_load"]
    assert task_run.started_at == first_start + timedelta(days=1)
    assert task_run.ended_at is not None
    assert (task_run.ended_at - task_run.started_at) < timedelta(seconds=1)
    stored = memory_store.get_run(run.id).tasks["slow_load"]
    assert (stored.started_at, stored.ended_at) == (task_run.started_at, task_run.ended_at)
    starts = [a.started_at for a in memory_store.attempts(run.id, "slow_load")]
    assert starts == [first_start, first_start + timedelta(days=1)]
