"""fast_init keeps a frozen dataclass what it was: signature, defaults, immutability, equality."""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field

import pytest

from pipekit import TaskContext, TaskRun
from pipekit._fastinit import fast_init
from pipekit.stores.base import AttemptEnded


@fast_init
@dataclass(frozen=True, slots=True)
class Point:
    x: int
    y: int = 7
    label: str | None = None


def test_fields_are_set_positionally_by_keyword_and_by_default() -> None:
    assert Point(1) == Point(x=1, y=7, label=None)
    assert (Point(1, 2, "a").x, Point(1, 2, "a").y, Point(1, 2, "a").label) == (1, 2, "a")
    params = inspect.signature(Point).parameters
    assert list(params) == ["x", "y", "label"]
    assert (params["y"].default, params["label"].default) == (7, None)


def test_instances_stay_frozen_hashable_and_comparable() -> None:
    p = Point(1, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.x = 3  # type: ignore[misc]
    assert hash(p) == hash(Point(1, 2))
    assert p != Point(2, 2)
    assert repr(p) == "Point(x=1, y=2, label=None)"


def test_wrong_arguments_fail_as_with_the_generated_init() -> None:
    with pytest.raises(TypeError):
        Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Point(1, z=2)  # type: ignore[call-arg]


def test_a_field_with_a_default_factory_is_refused() -> None:
    @dataclass(frozen=True, slots=True)
    class Bag:
        items: list[int] = field(default_factory=list)

    with pytest.raises(TypeError, match="items"):
        fast_init(Bag)


def test_the_run_loop_classes_keep_their_signatures() -> None:
    assert list(inspect.signature(AttemptEnded).parameters) == [
        "run_id",
        "task_id",
        "number",
        "state",
        "ended_at",
        "task_state",
        "error",
    ]
    assert list(inspect.signature(TaskContext).parameters) == [
        "run_id",
        "dag",
        "task",
        "attempt",
        "params",
        "output",
    ]
    run = TaskRun("t", "success")  # type: ignore[arg-type]
    assert (run.attempts, run.result, run.error) == (0, None, None)
