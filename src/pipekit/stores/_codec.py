"""How the stores normalise what they record: states, UTC timestamps, JSON params and text.

Every store passes every value through these functions, so a run read back from a
:class:`~pipekit.stores.MemoryStore` equals the same run read back from a
:class:`~pipekit.stores.SQLiteStore` or a :class:`~pipekit.stores.PostgresStore`:
timestamps come back as plain aware :class:`~datetime.datetime` objects in UTC with
microseconds, params as the dict that a (strict: no NaN or Infinity) JSON round trip
produces, states as :class:`~pipekit.State` members, and free text (errors, skip
reasons, module and file) with the characters PostgreSQL or UTF-8 cannot hold
escaped (:func:`store_text`); names (run ids, DAG names, task ids, claim keys) holding
them are refused (:func:`check_name`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from pipekit.errors import StoreError
from pipekit.state import State

__all__ = [
    "STATES",
    "check_added",
    "check_claim",
    "check_limit",
    "check_name",
    "check_names",
    "decode_params",
    "duplicate_attempt",
    "encode_params",
    "from_text",
    "from_text_or_none",
    "state_text",
    "store_text",
    "store_text_or_none",
    "to_state",
    "to_text",
    "to_utc",
]

STATES: dict[str, State] = {s.value: s for s in State}
"""State value to member, a faster lookup than calling ``State(value)``.

Members hash and compare like their values, so members find themselves here too.
"""

_TEXTS: dict[str, str] = {s.value: str(s.value) for s in State}

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode

NUL_ESCAPE: Final = "\\x00"
"""What a NUL character in stored text becomes: the four characters ``\\x00``."""
_fromisoformat = datetime.fromisoformat


def to_state(value: str, run_id: str) -> State:
    """Return ``value`` (a :class:`State` or its string) as a :class:`State` member.

    Raises:
        StoreError: ``value`` names no state.
    """
    try:
        return STATES[value]
    except (KeyError, TypeError):
        raise _bad_state(value, run_id) from None


def state_text(value: str, run_id: str) -> str:
    """Return ``value`` (a :class:`State` or its string) as a plain ``str``, for SQL.

    Raises:
        StoreError: ``value`` names no state.
    """
    try:
        return _TEXTS[value]
    except (KeyError, TypeError):
        raise _bad_state(value, run_id) from None


def _bad_state(value: object, run_id: str) -> StoreError:
    known = ", ".join(STATES)
    return StoreError(
        f"cannot record state {value!r} for run {run_id!r}: it is not a pipekit state; "
        f"use one of {known}"
    )


def to_utc(dt: datetime, run_id: str) -> datetime:
    """Return ``dt`` as a plain :class:`datetime` in UTC; raise StoreError if it is naive.

    Subclasses (such as pendulum's ``DateTime``) become plain datetimes so that every
    store hands back the same type.
    """
    if dt.tzinfo is UTC and type(dt) is datetime:
        return dt
    if not isinstance(dt, datetime) or dt.utcoffset() is None:
        raise StoreError(
            f"cannot record timestamp {dt!r} for run {run_id!r}: it has no time zone; "
            "pass an aware datetime such as datetime.now(UTC)"
        )
    d = dt.astimezone(UTC)
    return datetime(d.year, d.month, d.day, d.hour, d.minute, d.second, d.microsecond, UTC)


_SECOND: list[tuple[tuple[int, ...], str]] = [((), "")]
"""The last whole second :func:`to_text` formatted, and its text up to the seconds."""


def to_text(dt: datetime, run_id: str) -> str:
    """Return ``dt`` as ISO-8601 text in UTC with microseconds (sorts chronologically).

    A run loop stamps its changes thousands of times a second, so the text up to the
    seconds is kept from the last call (one tuple, replaced whole: thread-safe) and
    only the microseconds are formatted: 0.4 µs less than ``isoformat()``.
    """
    if dt.tzinfo is not UTC or type(dt) is not datetime:
        dt = to_utc(dt, run_id)
    key = (dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second)
    last = _SECOND[0]
    if last[0] != key:
        last = _SECOND[0] = (key, dt.isoformat(timespec="seconds")[:-6])
    return f"{last[1]}.{dt.microsecond:06d}+00:00"


def from_text(text: str) -> datetime:
    """Parse a timestamp written by :func:`to_text` back into an aware UTC datetime."""
    return _fromisoformat(text)


def from_text_or_none(text: str | None) -> datetime | None:
    """Like :func:`from_text`, passing None through."""
    return None if text is None else _fromisoformat(text)


def encode_params(params: Mapping[str, Any], run_id: str) -> str:
    """Return ``params`` as compact JSON text.

    NaN and Infinity are refused: JSON has no such numbers (PostgreSQL's ``json``
    rejects them), so a store that kept them would hold what another cannot. So is
    text with an unpaired surrogate (undecodable bytes that ``surrogateescape`` kept),
    which no database can encode.

    Raises:
        StoreError: a value is not a JSON value, is a non-finite float, or holds an
            unpaired surrogate; the message names the parameter.
    """
    try:
        text = _encode(dict(params))
        if not text.isascii():
            text.encode("utf-8")
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
        raise _bad_params(params, run_id, exc) from exc
    return text


def _bad_params(params: Mapping[str, Any], run_id: str, exc: Exception) -> StoreError:
    """The error for params :func:`encode_params` cannot write, naming the culprit."""
    what = "its params"
    for name, value in params.items():
        try:
            _encode(name).encode("utf-8")
            _encode(value).encode("utf-8")
        except (TypeError, ValueError) as one:
            exc, what = one, f"parameter {name!r}={value!r}"
            break
    if isinstance(exc, ValueError) and "JSON compliant" in str(exc):
        fix = "pass a finite number (or None) instead of NaN or Infinity"
    elif isinstance(exc, UnicodeEncodeError):
        fix = "decode the text it came from properly (it holds an unpaired surrogate)"
    else:
        fix = (
            "params must hold JSON values only (encode them with "
            "pipekit.params.encode_params before recording)"
        )
    return StoreError(f"cannot record {what} of run {run_id!r}: {exc}; {fix}")


def decode_params(text: str) -> dict[str, Any]:
    """Parse params written by :func:`encode_params`."""
    params: dict[str, Any] = json.loads(text)
    return params


def store_text(text: str) -> str:
    r"""Return free text (an error, a reason, a module or file) as every store keeps it.

    PostgreSQL text cannot hold a NUL character, and no database holds an unpaired
    surrogate (Python's ``surrogateescape`` makes them from undecodable bytes); so NUL
    becomes the four characters ``\x00`` and a surrogate its ``\udcXX`` escape, in
    every store alike. Other text is returned as it is.
    """
    if text.isascii():
        return text.replace("\x00", NUL_ESCAPE) if "\x00" in text else text
    text = text.replace("\x00", NUL_ESCAPE)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def store_text_or_none(text: str | None) -> str | None:
    """Like :func:`store_text`, passing None through.

    Raises:
        StoreError: ``text`` is neither text nor None (an exception object, say).
    """
    if text is None:
        return None
    if not isinstance(text, str):
        raise StoreError(
            f"cannot record {text!r} as text: it is a {type(text).__name__}; record "
            "errors and reasons as strings (str(exc))"
        )
    return store_text(text)


def check_names(run_id: str, dag: str, task_ids: Iterable[str]) -> None:
    """Raise StoreError if a run's id, DAG name or one of its task ids cannot be stored."""
    doing = f"record run {run_id!r}"
    check_name(run_id, "run id", "record a run")
    check_name(dag, "DAG name", doing)
    for task_id in task_ids:
        check_name(task_id, "task id", doing)


def check_claim(dag: str, key: str, owner: str) -> None:
    """Raise StoreError if a claim's DAG name, interval key or owner cannot be stored."""
    doing = f"claim interval {key!r} of DAG {dag!r}"
    check_name(dag, "DAG name", doing)
    check_name(key, "interval key", doing)
    check_name(owner, "owner", doing)


def check_lookup(
    run_id: str | None = None, task_id: str | None = None, dag: str | None = None
) -> None:
    """Raise StoreError for a name no store can hold, given to a read (as to a write).

    So every store answers alike: a run id with an undecodable byte is refused, naming
    it, where a database driver would raise its own encoding error.
    """
    for value, what in ((run_id, "run id"), (task_id, "task id"), (dag, "DAG name")):
        if value is not None:
            check_name(value, what, "read the run history")


def check_name(value: str, what: str, doing: str) -> None:
    """Raise StoreError if ``value`` (a run id, DAG name, task id...) cannot be stored as it is.

    Names are looked up by the exact value, so unlike free text they are not escaped:
    one holding a NUL character or an unpaired surrogate is refused in every store.
    ``what`` names the value (``"task id"``), ``doing`` the call (``"record run 'r1'"``).
    """
    if not isinstance(value, str) or ("\x00" not in value and value.isascii()):
        return
    bad = "\x00" in value
    if not bad:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            bad = True
    if bad:
        raise StoreError(
            f"cannot {doing}: {what} {value!r} holds a NUL character or an unpaired "
            "surrogate, which run history cannot store; use a name without them"
        )


def check_limit(limit: int | None) -> None:
    """Raise ValueError unless ``limit`` (of :meth:`Store.list_runs`) is None or >= 0."""
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be 0 or more, not {limit!r}; pass None for no limit")


def check_added(run_id: str, added: Sequence[str]) -> list[str]:
    """Return the tasks a :class:`RunResumed` adds as a list; raise StoreError if one repeats."""
    names = list(added)
    for name in names:
        check_name(name, "added task id", f"resume run {run_id!r}")
    if len(set(names)) != len(names):
        twice = next(n for i, n in enumerate(names) if n in names[:i])
        raise StoreError(
            f"cannot resume run {run_id!r}: its added tasks {names!r} list {twice!r} twice; "
            "list each new task once"
        )
    return names


def duplicate_attempt(run_id: str, task_id: str, number: int) -> StoreError:
    """The error for an attempt number recorded twice (every store raises the same)."""
    return StoreError(
        f"attempt {number} of task {task_id!r} in run {run_id!r} is already "
        "recorded; number each attempt of a task once"
    )
