"""The store contract at its edges: where the stores once disagreed, they now agree.

Each test runs once per store kind (see the ``store`` fixture in conftest.py), so the
memory store, SQLite and PostgreSQL are held to the same answer.
"""

from __future__ import annotations

from typing import Any

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
    TaskStateSet,
)

from .conftest import STORES
from .test_contract import at

pytestmark = pytest.mark.parametrize("store", STORES, indirect=True)


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


NUL_ERROR = "bad row\x00 here"
STORED_ERROR = "bad row\\x00 here"  # NUL kept as the four characters \x00


def failing(run_id: str, task: str, number: int, when: float) -> list[Change]:
    """An attempt that starts at ``when`` and fails a second later with NUL_ERROR."""
    return [
        AttemptStarted(run_id, task, number, at(when)),
        AttemptEnded(run_id, task, number, State.FAILED, at(when + 1), State.FAILED, NUL_ERROR),
    ]


@pytest.mark.parametrize(
    "calls",
    [
        pytest.param([failing("r1", "t", 1, 1)], id="grouped start and end"),
        pytest.param([[c] for c in failing("r1", "t", 1, 1)], id="a call each"),
        # Two open starts of u send the call change by change; t's start and end pair.
        pytest.param(
            [
                [
                    *failing("r1", "t", 1, 1),
                    AttemptStarted("r1", "u", 1, at(1)),
                    AttemptStarted("r1", "u", 2, at(1)),
                ]
            ],
            id="paired change by change",
        ),
        pytest.param(
            [
                [AttemptStarted("r1", "t", 1, at(1))],
                [
                    AttemptStarted("r1", "u", 1, at(1)),
                    AttemptStarted("r1", "u", 2, at(1)),
                    failing("r1", "t", 1, 1)[1],
                ],
            ],
            id="change by change",
        ),
    ],
)
def test_a_nul_in_an_error_is_kept_escaped(store: Store, calls: list[list[Change]]) -> None:
    """A task error holding NUL (PostgreSQL text cannot) reads back with it as \\x00."""
    store.record([RunStarted("r1", "etl", {}, ["t", "u"], at(0))])
    for call in calls:
        store.record(call)

    assert store.get_run("r1").tasks["t"].error == STORED_ERROR
    assert store.attempts("r1", "t")[0].error == STORED_ERROR


def test_nul_and_surrogates_in_other_free_text_are_kept_escaped(store: Store) -> None:
    """Module, file, a skip reason and a run error are escaped like task errors."""
    store.record(
        [
            RunStarted("r1", "etl", {}, ["t", "u"], at(0), module="m\x00", file="/f\udcff.py"),
            TaskStateSet("r1", ["t"], State.SKIPPED, at(1), reason="why\x00"),
            RunEnded("r1", State.FAILED, at(2), "run \x00 failed \udcff"),
        ]
    )
    run = store.get_run("r1")

    assert (run.module, run.file) == ("m\\x00", "/f\\udcff.py")
    assert run.tasks["t"].error == "why\\x00"
    assert run.error == "run \\x00 failed \\udcff"
    assert store.list_runs() == [run]


def test_params_holding_nul_round_trip(store: Store) -> None:
    """JSON escapes NUL inside params, so every store keeps such params as they were."""
    store.record([RunStarted("r1", "etl", {"sep\x00": "a\x00b"}, ["t"], at(0))])

    assert store.get_run("r1").params == {"sep\x00": "a\x00b"}


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(RunStarted("r\x00", "etl", {}, ["t"], at(0)), id="run id"),
        pytest.param(RunStarted("r2", "e\x00tl", {}, ["t"], at(0)), id="DAG name"),
        pytest.param(RunStarted("r2", "etl", {}, ["t", "a\x00b"], at(0)), id="task id"),
        pytest.param(RunStarted("r2", "etl", {}, ["\udcff"], at(0)), id="surrogate task id"),
        pytest.param(RunResumed("r1", at(1), ["t"], ["new\x00"]), id="added task id"),
    ],
)
def test_a_name_holding_nul_is_refused_naming_it(store: Store, change: Change) -> None:
    """Ids are looked up exactly, so one that a store cannot hold is refused, not escaped."""
    store.record([RunStarted("r1", "etl", {}, ["t"], at(0)), RunEnded("r1", State.FAILED, at(1))])

    with pytest.raises(StoreError, match=r"holds a NUL character or an unpaired surrogate"):
        store.record([change])

    assert [(r.id, r.state, list(r.tasks)) for r in store.list_runs()] == [
        ("r1", State.FAILED, ["t"])
    ]


def test_a_claim_holding_nul_is_refused(store: Store) -> None:
    """Claim and release refuse a DAG name, key or owner that a store cannot hold."""
    with pytest.raises(StoreError, match=r"interval key 'day\\x00'"):
        store.claim("etl", "day\x00", "me")
    with pytest.raises(StoreError, match=r"owner"):
        store.release("etl", "day", "m\x00e")
    assert store.claim("etl", "day", "me") is True


@pytest.mark.parametrize(
    ("params", "fix"),
    [
        ({"ok": 1, "rate": float("nan")}, "finite number"),
        ({"limits": [1.0, float("inf")]}, "finite number"),
        ({"low": -float("inf")}, "finite number"),
        ({"name": "caf\udce9"}, "unpaired surrogate"),
    ],
    ids=["nan", "inf in a list", "-inf", "surrogate"],
)
def test_params_no_store_can_hold_are_refused_naming_the_parameter(
    store: Store, params: dict[str, object], fix: str
) -> None:
    """NaN, Infinity and unpaired surrogates are refused up front, naming the parameter."""
    name = next(k for k in params if k != "ok")

    with pytest.raises(StoreError, match=rf"parameter '{name}'=.* of run 'r1'.*{fix}"):
        store.record([RunStarted("r1", "etl", params, ["t"], at(0))])

    assert store.list_runs() == []


def test_an_error_that_is_not_text_is_a_store_error(store: Store) -> None:
    """A change whose error is not a string is refused with StoreError by every path."""
    store.record([RunStarted("r", "d", {}, ["a"], at(0))])
    bad: Any = ValueError("boom")
    ended = AttemptEnded("r", "a", 1, State.FAILED, at(2), State.FAILED, bad)
    with pytest.raises(StoreError, match="ValueError"):
        store.record([AttemptStarted("r", "a", 1, at(1)), ended])
    assert store.get_run("r").tasks["a"].state == "queued"  # nothing of the call applied


@pytest.mark.parametrize(
    "read",
    [
        lambda s: s.get_run("r\udc80"),
        lambda s: s.list_runs(dag="d\x00"),
        lambda s: s.attempts("r1", "a\udc80"),
        lambda s: s.load_result("r1", "a\x00"),
    ],
    ids=["get_run", "list_runs", "attempts", "load_result"],
)
def test_a_read_naming_what_no_store_can_hold_is_a_store_error(store: Store, read: Any) -> None:
    """Every store refuses it alike, naming it (a driver would raise its own error)."""
    store.record([RunStarted("r1", "d", {}, ["a"], at(0))])
    with pytest.raises(StoreError, match="read the run history"):
        read(store)
