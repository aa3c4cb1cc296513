"""SQL stores apply a batch of attempt changes as a few executemany calls: same rows.

``SQLStore.record`` groups runs of AttemptStarted/AttemptEnded/ResultSaved changes by
statement (``stores/_batch.py``). These tests check, for random histories cut into
random batches, that the SQLite store ends with exactly what the MemoryStore (which
applies change by change) holds; and that a bad change in a large batch still gets
its precise error with nothing of the batch applied.
"""

from __future__ import annotations

import itertools
import pickle
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipekit import State, StoreError
from pipekit.stores import MemoryStore, SQLiteStore, Store
from pipekit.stores._sql import SQLStore
from pipekit.stores.base import (
    AttemptEnded,
    AttemptStarted,
    Change,
    ResultSaved,
    RunEnded,
    RunStarted,
    TaskStateSet,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RUN = "20260101T000000-000000000001"


def _task_history(tid: str, outcomes: list[str]) -> list[tuple[str, Any]]:
    """One task's changes, in order, without timestamps: ("start"|"end"|"result", data).

    ``outcomes`` lists the attempts: "retry" (failed, queued again), "fail", "ok", or
    "open" (started, never ended: the last attempt only).
    """
    events: list[tuple[str, Any]] = []
    for number, outcome in enumerate(outcomes, start=1):
        events.append(("start", (tid, number)))
        if outcome == "open":
            break
        if outcome == "ok":
            events.append(("result", (tid, number)))
        events.append(("end", (tid, number, outcome)))
        if outcome != "retry":
            break
    return events


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[str], list[Change], list[int]]:
    """Task ids, one run's changes (tasks interleaved), and cut points into batches."""
    n = draw(st.integers(1, 4))
    tids = [f"t{i}" for i in range(n)]
    per_task = []
    for tid in tids:
        outcomes = draw(
            st.lists(st.sampled_from(["retry", "fail", "ok", "open"]), min_size=0, max_size=4)
        )
        per_task.append(_task_history(tid, outcomes))
    merged: list[tuple[str, Any]] = []
    cursors = [0] * n
    while any(c < len(h) for c, h in zip(cursors, per_task, strict=True)):
        live = [i for i in range(n) if cursors[i] < len(per_task[i])]
        i = draw(st.sampled_from(live))
        merged.append(per_task[i][cursors[i]])
        cursors[i] += 1
    untouched = [t for t, h in zip(tids, per_task, strict=True) if not h]
    changes: list[Change] = [RunStarted(RUN, "d", {"x": 1}, tids, T0)]
    for k, (kind, data) in enumerate(merged, start=1):
        at = T0 + timedelta(seconds=k)
        if kind == "start":
            changes.append(AttemptStarted(RUN, data[0], data[1], at))
        elif kind == "result":
            changes.append(ResultSaved(RUN, data[0], pickle.dumps((data, k))))
        else:
            tid, number, outcome = data
            state = State.SUCCESS if outcome == "ok" else State.FAILED
            task_state = State.QUEUED if outcome == "retry" else state
            error = None if outcome == "ok" else f"ValueError: attempt {number}"
            changes.append(AttemptEnded(RUN, tid, number, state, at, task_state, error))
        if untouched and draw(st.integers(0, 9)) == 0:
            changes.append(
                TaskStateSet(RUN, [untouched.pop()], State.UPSTREAM_FAILED, at, "upstream")
            )
    if draw(st.booleans()):
        changes.append(RunEnded(RUN, State.FAILED, T0 + timedelta(hours=1), "boom"))
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(changes) - 1)), max_size=6)))
    return tids, changes, cuts


def _apply(store: Store, changes: list[Change], cuts: list[int]) -> None:
    bounds = [0, *cuts, len(changes)]
    for a, b in itertools.pairwise(bounds):
        if a < b:
            store.record(changes[a:b])


def _never(*args: object) -> None:
    raise AssertionError("a valid batch fell back to change-by-change writes")


def _snapshot(store: Store, tids: list[str]) -> tuple[Any, ...]:
    run = store.get_run(RUN)
    tasks = {
        t: (r.state, r.attempts, r.error, r.started_at, r.ended_at) for t, r in run.tasks.items()
    }
    results = {t: store.load_result(RUN, t) for t in tids}
    return (run.state, run.ended_at, run.error, tasks, store.attempts(RUN), results)


@settings(max_examples=150, deadline=None)
@given(histories())
def test_batched_sql_writes_leave_what_change_by_change_writes_leave(
    history: tuple[list[str], list[Change], list[int]],
) -> None:
    tids, changes, cuts = history
    reference = MemoryStore()
    for change in changes:
        reference.record([change])
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        sqlite = SQLiteStore(Path(tmp) / "history.db")
        # A valid history never needs the change-by-change path.
        mp.setattr(SQLStore, "_apply_each", _never)
        try:
            _apply(sqlite, changes, cuts)
            assert _snapshot(sqlite, tids) == _snapshot(reference, tids)
        finally:
            sqlite.close()


def _big_batch(tids: list[str]) -> list[Change]:
    changes: list[Change] = []
    for k, tid in enumerate(tids):
        at = T0 + timedelta(seconds=k)
        changes.append(AttemptStarted(RUN, tid, 1, at))
        changes.append(ResultSaved(RUN, tid, pickle.dumps(k)))
        changes.append(AttemptEnded(RUN, tid, 1, State.SUCCESS, at, State.SUCCESS))
    return changes


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (AttemptEnded(RUN, "t7", 9, State.SUCCESS, T0, State.SUCCESS), "no attempt 9 of task 't7'"),
        (AttemptStarted(RUN, "nope", 1, T0), "has no task 'nope'"),
        (AttemptStarted(RUN, "t3", 1, T0), "attempt 1 of task 't3'"),
        (ResultSaved(RUN, "ghost", b"x"), "has no task 'ghost'"),
        (AttemptStarted(RUN, "t4", 2, datetime(2026, 1, 1)), "no time zone"),
    ],
)
def test_a_bad_change_in_a_large_batch_names_itself_and_nothing_is_applied(
    tmp_path: Path, bad: Change, message: str
) -> None:
    tids = [f"t{i}" for i in range(50)]
    store = SQLiteStore(tmp_path / "history.db")
    store.record([RunStarted(RUN, "d", {}, tids, T0)])
    batch = _big_batch(tids)
    batch.insert(60, bad)  # after t0-t19 finished, so the bad change is mid-batch
    with pytest.raises(StoreError, match=message):
        store.record(batch)
    run = store.get_run(RUN)
    assert {r.state for r in run.tasks.values()} == {State.QUEUED}
    assert store.attempts(RUN) == []
    assert store.load_result(RUN, "t0") is None
    store.record(_big_batch(tids))  # the store still works, and the good batch applies
    assert {r.state for r in store.get_run(RUN).tasks.values()} == {State.SUCCESS}
    store.close()
