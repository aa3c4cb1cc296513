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

A saved value is written by its task's end row (``result = COALESCE(?, result)``) when
the task ends in the group; the others are one ``UPDATE`` each, after every end. As a
group is one transaction, only each row's final value matters, and it is the last
value saved for the task, as applying the changes one by one would leave it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pipekit.errors import StoreError
from pipekit.stores._codec import _TEXTS, store_text_or_none
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
    results: list[tuple[bytes, str, str]] = field(default_factory=list)
    """Saved values that no end of this group carries: of tasks that do not end here, or
    saved after their task's end (a value saved before an end rides on the end's row)."""


def plan(changes: Sequence[Change], stamp: Callable[[datetime, str], Any]) -> Plan | None:
    """Rows for ``changes`` (all of :data:`GROUPED` types), or None to apply them one by one.

    ``stamp`` converts a timestamp to its column value (raising StoreError if naive).
    """
    try:
        return _plan(changes, stamp)
    except (StoreError, KeyError, TypeError):  # a bad timestamp or state
        return None


def _plan(changes: Sequence[Change], stamp: Callable[[datetime, str], Any]) -> Plan | None:
    out = Plan()
    open_: dict[tuple[str, str], tuple[int, Any]] = {}  # task -> (number, start stamp)
    ended: set[tuple[str, str]] = set()  # tasks with an attempt ended in this group
    saved: dict[tuple[str, str], bytes] = {}  # task -> its last saved value here
    texts = _TEXTS
    finish_tasks, finished_attempts = out.finish_tasks, out.finished_attempts
    for c in changes:
        kind = type(c)
        if kind is AttemptStarted:
            s: AttemptStarted = c  # type: ignore[assignment]
            key = (s.run_id, s.task_id)
            if key in open_:
                return None  # two starts without an end between them
            open_[key] = (s.number, stamp(s.started_at, s.run_id))
        elif kind is AttemptEnded:
            e: AttemptEnded = c  # type: ignore[assignment]
            run_id, task_id, number = e.run_id, e.task_id, e.number
            key = (run_id, task_id)
            state = texts[e.state]
            task_state = texts[e.task_state]
            ended_at = stamp(e.ended_at, run_id)
            error = store_text_or_none(e.error)  # as every store keeps text (NUL escaped)
            task_error = error if state == "failed" else None
            # The group is one transaction: only the row's final value matters, so a
            # value saved before this end (the loop's order) is written with it.
            data = saved.pop(key, None)
            start = open_.pop(key, None)
            if start is not None:
                if start[0] != number:
                    return None
                started = start[1]
                finish_tasks.append(
                    (task_state, number, started, ended_at, task_error, data, run_id, task_id)
                )
                finished_attempts.append((run_id, task_id, number, state, started, ended_at, error))
            else:
                if key in ended:
                    return None  # an end that is not the first change of its task here
                out.end_attempts.append((state, ended_at, error, run_id, task_id, number))
                out.end_tasks.append((task_state, ended_at, task_error, data, run_id, task_id))
            ended.add(key)
        else:
            r: ResultSaved = c  # type: ignore[assignment]
            if not isinstance(r.data, bytes):
                return None  # applied one by one, which names the bad value
            saved[(r.run_id, r.task_id)] = r.data
    for (run_id, task_id), (number, started) in open_.items():
        out.start_tasks.append((number, started, run_id, task_id))
        out.started_attempts.append((run_id, task_id, number, started))
    out.results = [(data, run_id, task_id) for (run_id, task_id), data in saved.items()]
    return out
