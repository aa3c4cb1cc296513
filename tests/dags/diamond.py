"""A diamond a -> (b, c) -> d plus an independent branch x -> y; FAIL names tasks that raise."""

from __future__ import annotations

from pipekit import dag, task

FAIL: set[str] = set()
CALLS: list[str] = []


def _step(name: str, *inputs: int) -> int:
    CALLS.append(name)
    if name in FAIL:
        raise ValueError(f"{name} broke")
    return 1 + sum(inputs)


@task
def a() -> int:
    return _step("a")


@task
def b(x: int) -> int:
    return _step("b", x)


@task
def c(x: int) -> int:
    return _step("c", x)


@task
def d(x: int, y: int) -> int:
    return _step("d", x, y)


@task
def x() -> int:
    return _step("x")


@task
def y(v: int) -> int:
    return _step("y", v)


@dag
def diamond() -> None:
    top = a()
    d(b(top), c(top))
    y(x())
