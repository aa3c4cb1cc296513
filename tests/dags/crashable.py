"""10,000 tasks in 100 layers of 100, for the crash test; each notes its end in $CRASH_LOG."""

from __future__ import annotations

import os
from typing import Any

from pipekit import DAG, dag, task

LAYERS = 100
WIDTH = 100
_fd: list[int] = []


def _note(name: str) -> None:
    if not _fd:
        _fd.append(os.open(os.environ["CRASH_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT))
    os.write(_fd[0], f"{name}\n".encode())  # one small O_APPEND write: all or nothing


def _make(name: str) -> Any:
    def step(up: int = 0) -> int:
        _note(name)
        return up + 1

    return task(name=name)(step)


TASKS = [[_make(f"l{layer}_{i}") for i in range(WIDTH)] for layer in range(LAYERS)]


@dag
def crashable() -> None:
    previous = [t() for t in TASKS[0]]
    for layer in TASKS[1:]:
        previous = [t(previous[(i * 7) % WIDTH]) for i, t in enumerate(layer)]


def expected_depth() -> int:
    """What every last-layer task returns: the number of layers."""
    return LAYERS


assert isinstance(crashable, DAG)
