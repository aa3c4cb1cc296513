"""Planning a batch of attempt changes as a few ``executemany`` calls.

A run loop's batch is mostly attempts starting and ending and results being saved,
thousands of them. Applied one statement at a time, each costs a driver round trip in
Python; grouped by statement, they cost one ``executemany`` each. :func:`plan` turns a
run of consecutive :class:`AttemptStarted`, :class:`AttemptEnded` and
:class:`ResultSaved` changes into rows per statement, in an order that leaves exactly
the rows that applying the changes one by one would.

Why the order is safe: for any one task, a valid sequence of changes cut out of its
history has the shape [end of an attempt begun earlier] [attempts begun and ended
here ...] [start of an attempt that ends later]. Applying all such ends, then all
complete attempts (in order), then all starts therefore keeps each task's own order;
rows of different tasks are independent. :func:`plan` checks that shape and returns
None for anything else (or for a bad timestamp or state): the store then applies the
batch change by change, which reports the precise error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pipekit.errors import StoreError
from pipekit.stores._codec import state_text
from pipekit.stores.base import AttemptEnded, AttemptStarted, Change, ResultSaved

__all__ = ["GROUPED", "Plan", "plan"]

GROUPED = (AttemptStarted, AttemptEnded, ResultSaved)
"""The change types :func:`plan` groups (every other change is applied on its own)."""


@dataclass(slots=True)
class Plan:
    """Rows per statement for one group of changes (see :func:`plan`)."""

    end_attempts: list[tuple[Any, ...]] = field(default_factory=list)
    end_tasks: list[tuple[Any, ...]] = field(default_factory=list)
    finish_tasks: list[tuple[Any, ...]] = field(default_factory=list)
    finished_attempts: list[tuple[Any, ...]] = field(default_factory=list)
    start_tasks: list[tuple[Any, ...]] = field(default_factory=list)
    started_attempts: list[tuple[Any, ...]] = field(default_factory=list)
    results: list[tuple[str, str, bytes]] = field(default_factory=list)
    unchecked: set[tuple[str, str]] = field(default_factory=set)
    """Tasks that only have a result here: the store checks that they exist."""


def plan(changes: Sequence[Change], stamp: Callable[[datetime, str], Any]) -> Plan | None:
    """Rows for ``changes`` (all of :data:`GROUPED` types), or None to apply them one by one.

    ``stamp`` converts a timestamp to its column value (raising StoreError if naive).
    """
    try:
        return _plan(changes, stamp)
    except StoreError:
        return None


def _plan(changes: Sequence[Change], stamp: Callable[[datetime, str], Any]) -> Plan | None:
    out = Plan()
    open_: dict[tuple[str, str], tuple[int, Any]] = {}  # task -> (number, start stamp)
    seen: set[tuple[str, str]] = set()
    results: list[ResultSaved] = []
    for c in changes:
        kind = type(c)
        if kind is ResultSaved:
            results.append(c)  # type: ignore[arg-type]
            continue
        run_id, task_id, number = c.run_id, c.task_id, c.number  # type: ignore[union-attr]
        key = (run_id, task_id)
        if kind is AttemptStarted:
            if key in open_:
                return None  # two starts without an end between them
            open_[key] = (number, stamp(c.started_at, run_id))  # type: ignore[union-attr]
            seen.add(key)
            continue
        e: AttemptEnded = c  # type: ignore[assignment]
        state = state_text(e.state, run_id)
        task_state = state_text(e.task_state, run_id)
        ended = stamp(e.ended_at, run_id)
        task_error = e.error if state == "failed" else None
        start = open_.pop(key, None)
        if start is not None:
            if start[0] != number:
                return None
            started = start[1]
            out.finish_tasks.append(
                (task_state, number, started, ended, task_error, run_id, task_id)
            )
            out.finished_attempts.append((run_id, task_id, number, state, started, ended, e.error))
        else:
            if key in seen:
                return None  # an end that is not the first change of its task here
            out.end_attempts.append((state, ended, e.error, run_id, task_id, number))
            out.end_tasks.append((task_state, ended, task_error, run_id, task_id))
        seen.add(key)
    for (run_id, task_id), (number, started) in open_.items():
        out.start_tasks.append((number, started, run_id, task_id))
        out.started_attempts.append((run_id, task_id, number, started))
    for r in results:
        if not isinstance(r.data, bytes):
            return None
        key = (r.run_id, r.task_id)
        if key not in seen:
            out.unchecked.add(key)
        out.results.append((r.run_id, r.task_id, r.data))
    return out
