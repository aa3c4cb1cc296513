"""The run loop guards its own steps: outputs rendered up front, an executor that cannot
start, values a cluster cannot send back, and a skip below a failure."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

import pipekit
from pipekit import PipekitError, Skip, dag, task
from pipekit.executors import SequentialExecutor
from pipekit.stores import MemoryStore

CALLS: list[str] = []


@task
def first() -> int:
    CALLS.append("first")
    return 1


def test_an_output_that_cannot_be_rendered_is_a_param_error_before_anything_runs(
    tmp_path: Path, store: MemoryStore
) -> None:
    """'{ds:%Y}' on an untyped ds (a str) fails at once, naming the task and template."""
    CALLS.clear()

    @task(output=str(tmp_path / "{ds:%Y}" / "sales.csv"))
    def write(x: int, ds: str) -> str:
        CALLS.append("write")
        return "written"

    @dag
    def dated_output(ds):  # type: ignore[no-untyped-def]
        write(first(), ds)

    with pytest.raises(pipekit.ParamError, match=r"output=.*\{ds:%Y\}.* of task 'write'.*ds="):
        dated_output.run(ds="2024-01-05", store=store, executor="sequential")
    assert CALLS == []
    assert store.list_runs() == []


class _OutOfReach(SequentialExecutor):
    def start(self, report: Any) -> None:
        raise PipekitError("cannot reach the cluster at tcp://127.0.0.1:1; check the address")


def test_an_executor_that_cannot_start_leaves_no_run_behind(store: MemoryStore) -> None:
    """The start is tried before the run is recorded: no run stays 'running' forever."""

    @dag
    def unreachable() -> None:
        first()

    with pytest.raises(PipekitError, match="cannot reach the cluster"):
        unreachable.run(executor=_OutOfReach(), store=store)
    time.sleep(0.06)  # past the group commit's 50 ms: a recorded start would be there
    assert store.list_runs() == []


@task
def maybe() -> None:
    raise Skip("nothing to do today")


BROKEN = {"boom": True}
RAN: list[str] = []


@task
def boom() -> None:
    if BROKEN["boom"]:
        raise ConnectionError("warehouse down")


@task
def publish() -> None:
    RAN.append("publish")


@dag
def skip_first() -> None:
    [maybe(), boom()] >> publish()


@dag
def fail_first() -> None:
    [boom(), maybe()] >> publish()


@pytest.mark.parametrize("d", [skip_first, fail_first], ids=["skip-first", "failure-first"])
def test_a_task_below_a_skip_and_a_failure_is_skipped_whichever_ends_first(
    d: Any, store: MemoryStore
) -> None:
    """Skipped wins over upstream_failed, and a re-run after the fix leaves it skipped."""
    assert next(t for t in d.order if t != "publish") == ("maybe" if d is skip_first else "boom")
    BROKEN["boom"] = True
    RAN.clear()
    run = d.run(store=store, executor="sequential", raise_on_failure=False)
    assert run.tasks["publish"].state == "skipped"
    assert store.get_run(run.id).tasks["publish"].state == "skipped"
    BROKEN["boom"] = False
    again = pipekit.rerun(run.id, store=store, executor="sequential")
    assert again.tasks["boom"].state == "success"
    assert again.tasks["publish"].state == "skipped"
    assert RAN == []


@task
def make_lock() -> Any:
    return threading.Lock()


@dag
def lock_leaf() -> None:
    make_lock()


def test_a_value_the_cluster_cannot_send_back_is_not_saved_and_the_run_goes_on(
    dask_cluster: Any, store: MemoryStore
) -> None:
    """A lock returned on a Dask worker cannot be serialized: the task still succeeds,
    its value is simply not saved (as an unpicklable local value is not)."""
    run = lock_leaf.run(executor="dask", store=store)
    assert run.state == "success"
    assert run.tasks["make_lock"].result is None
    recorded = store.get_run(run.id)
    assert recorded.state == "success"
    assert recorded.tasks["make_lock"].state == "success"
