"""Saved results in the history (ResultSaved, load_result, prune_results), in every store.

Each test runs once per store kind (see the ``store`` fixture in conftest.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pipekit.errors import StoreError
from pipekit.state import State
from pipekit.stores import (
    AttemptEnded,
    AttemptStarted,
    ResultSaved,
    RunResumed,
    RunStarted,
    Store,
)

from .conftest import STORES

pytestmark = pytest.mark.parametrize("store", STORES, indirect=True)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def test_a_value_saved_with_the_success_reads_back_and_is_replaced(store: Store) -> None:
    """ResultSaved keeps bytes per (run, task); saving again replaces them; absent is None."""
    store.record([RunStarted("r1", "etl", {}, ["a", "b"], T0)])
    store.record([AttemptStarted("r1", "a", 1, T0)])
    store.record(
        [
            ResultSaved("r1", "a", b"\x80first"),
            AttemptEnded("r1", "a", 1, State.SUCCESS, T0, State.SUCCESS),
        ]
    )
    assert store.load_result("r1", "a") == b"\x80first"
    store.record([ResultSaved("r1", "a", b"second")])
    assert store.load_result("r1", "a") == b"second"
    assert store.load_result("r1", "b") is None
    assert store.load_result("ghost", "a") is None


def test_a_task_reset_to_run_again_loses_its_old_value_others_keep_theirs(store: Store) -> None:
    """RunResumed clears the saved value of each reset task (it runs again), in one batch too."""
    store.record([RunStarted("r1", "etl", {}, ["a", "b"], T0)])
    for task_id in ("a", "b"):
        store.record([AttemptStarted("r1", task_id, 1, T0)])
        store.record(
            [
                ResultSaved("r1", task_id, task_id.encode()),
                AttemptEnded("r1", task_id, 1, State.SUCCESS, T0, State.SUCCESS),
            ]
        )

    store.record([RunResumed("r1", T0, ["b"])])
    assert store.load_result("r1", "a") == b"a"
    assert store.load_result("r1", "b") is None

    store.record(
        [
            AttemptStarted("r1", "b", 2, T0),
            AttemptEnded("r1", "b", 2, State.SUCCESS, T0, State.SUCCESS),
            RunResumed("r1", T0, ["a"]),
            ResultSaved("r1", "b", b"b2"),
        ]
    )
    assert store.load_result("r1", "a") is None
    assert store.load_result("r1", "b") == b"b2"


def test_a_value_for_an_unknown_task_is_refused_with_the_rest_of_its_call(store: Store) -> None:
    """ResultSaved for a task the run lacks raises StoreError; its call applies nothing."""
    store.record([RunStarted("r1", "etl", {}, ["a"], T0)])
    with pytest.raises(StoreError, match="'zzz'"):
        store.record([AttemptStarted("r1", "a", 1, T0), ResultSaved("r1", "zzz", b"x")])
    assert store.attempts("r1") == []


def test_prune_forgets_the_values_of_runs_started_before_the_cutoff(store: Store) -> None:
    """prune_results drops values of older runs, counts those runs, and keeps the history."""
    for i, run_id in enumerate(["old", "older", "new"]):
        start = T0 - timedelta(days=10 * (i + 1)) if run_id != "new" else T0
        store.record([RunStarted(run_id, "etl", {}, ["a", "b"], start)])
        store.record([ResultSaved(run_id, "a", b"a"), ResultSaved(run_id, "b", b"b")])

    assert store.prune_results(T0 - timedelta(days=1)) == 2

    assert store.load_result("old", "a") is None
    assert store.load_result("older", "b") is None
    assert store.load_result("new", "a") == b"a"
    assert {r.id for r in store.list_runs()} == {"old", "older", "new"}
    assert store.prune_results(T0 - timedelta(days=1)) == 0


def test_prune_does_not_count_a_run_whose_only_value_a_rerun_cleared(store: Store) -> None:
    """A run left with no saved value (its task reset by RunResumed) is not counted."""
    store.record([RunStarted("r1", "etl", {}, ["a"], T0), ResultSaved("r1", "a", b"a")])
    store.record([RunResumed("r1", T0 + timedelta(hours=1), ["a"])])

    assert store.prune_results(T0 + timedelta(days=1)) == 0
    assert store.load_result("r1", "a") is None


def test_a_closed_store_refuses_to_load_or_prune_values(store: Store) -> None:
    """After close(), load_result and prune_results raise StoreError like every other call."""
    store.record([RunStarted("r1", "etl", {}, ["a"], T0), ResultSaved("r1", "a", b"a")])
    store.close()

    with pytest.raises(StoreError, match="closed"):
        store.load_result("r1", "a")
    with pytest.raises(StoreError, match="closed"):
        store.prune_results(T0 + timedelta(days=1))
