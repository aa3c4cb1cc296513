"""The store contract at its edges: where the stores once disagreed, they now agree.

Each test runs once per store kind (see the ``store`` fixture in conftest.py), so the
memory store, SQLite and PostgreSQL are held to the same answer.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pipekit.errors import StoreError
from pipekit.run import Attempt, TaskRun
from pipekit.state import State
from pipekit.stores import (
    AttemptEnded,
    AttemptStarted,
    Change,
    RunEnded,
    RunResumed,
    RunStarted,
    Store,
)

from .conftest import STORES

pytestmark = pytest.mark.parametrize("store", STORES, indirect=True)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    """Return the instant ``seconds`` after T0."""
    return T0 + timedelta(seconds=seconds)


@pytest.mark.parametrize("one_call", [True, False], ids=["one call", "a call each"])
def test_an_attempt_ending_after_the_next_one_started_leaves_the_last_state(
    store: Store, one_call: bool
) -> None:
    """Start 1, start 2, end 1 (failed): the task is failed with 2 attempts, in one call or many."""
    changes: list[Change] = [
        RunStarted("r1", "etl", {}, ["t"], at(0)),
        AttemptStarted("r1", "t", 1, at(0)),
        AttemptStarted("r1", "t", 2, at(1)),
        AttemptEnded("r1", "t", 1, State.FAILED, at(2), State.FAILED, "boom"),
    ]
    if one_call:
        store.record(changes)
    else:
        for change in changes:
            store.record([change])

    assert store.get_run("r1").tasks["t"] == TaskRun(
        "t", State.FAILED, attempts=2, error="boom", started_at=at(0), ended_at=at(2)
    )
    assert store.attempts("r1") == [
        Attempt("r1", "t", 1, State.FAILED, at(0), at(2), "boom"),
        Attempt("r1", "t", 2, State.RUNNING, at(1)),
    ]


def test_an_end_of_another_attempt_between_a_start_and_its_end_keeps_the_order(
    store: Store,
) -> None:
    """Start 2, end 1, end 2 in one call: attempt 2's end is the last, so its state stays."""
    store.record([RunStarted("r1", "etl", {}, ["t"], at(0)), AttemptStarted("r1", "t", 1, at(0))])

    store.record(
        [
            AttemptStarted("r1", "t", 2, at(1)),
            AttemptEnded("r1", "t", 1, State.FAILED, at(2), State.QUEUED, "first"),
            AttemptEnded("r1", "t", 2, State.SUCCESS, at(3), State.SUCCESS),
        ]
    )

    assert store.get_run("r1").tasks["t"] == TaskRun(
        "t", State.SUCCESS, attempts=2, started_at=at(0), ended_at=at(3)
    )


def test_a_resume_adding_a_task_twice_is_refused_naming_it(store: Store) -> None:
    """RunResumed(added=["x", "x"]) raises StoreError naming "x", and applies nothing."""
    store.record([RunStarted("r1", "etl", {}, ["t"], at(0)), RunEnded("r1", State.FAILED, at(1))])

    with pytest.raises(StoreError, match=r"'x' twice; list each new task once"):
        store.record([RunResumed("r1", at(2), [], ["x", "x"])])

    run = store.get_run("r1")
    assert (run.state, list(run.tasks)) == (State.FAILED, ["t"])
