"""Run parameters: declared by the DAG function's signature, bound and checked per run.

A DAG's parameters are its function's parameters; those without defaults are
required. Parameters annotated as a date or datetime accept ISO strings and are
converted with pendulum (strings without a zone are read in the DAG's timezone, and an
offset that is that timezone's at the instant is read as the timezone, so a re-run of a
recorded run gets the same values; defaults are converted too);
``int``, ``float`` and ``bool`` annotations accept their string forms, so values from
a command line or a YAML file work as they are. Everything is checked before a run
starts: a bad value raises :class:`pipekit.ParamError` naming it.
"""

from __future__ import annotations

import datetime as dt
import inspect
import json
import math
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pipekit.errors import DefinitionError, ParamError

__all__ = ["Param", "bind_params", "encode_params", "recorded_key", "signature_params"]

_MISSING: Any = inspect.Parameter.empty
_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}


@dataclass(frozen=True, slots=True)
class Param:
    """One declared run parameter.

    Attributes:
        name: its name.
        default: the default value, or :data:`inspect.Parameter.empty` when required.
        kind: how values are converted: "date", "datetime", "int", "float", "bool",
            "str", or None (taken as given).
    """

    name: str
    default: Any = _MISSING
    kind: str | None = None

    @property
    def required(self) -> bool:
        """True when the parameter has no default."""
        return self.default is _MISSING


def _kind_of(annotation: Any) -> str | None:  # noqa: PLR0911 - one return per kind
    if annotation is _MISSING or annotation is None:
        return None
    origin = typing.get_origin(annotation)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        # Optional[date] and friends: convert by the first non-None member.
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _kind_of(members[0]) if len(members) == 1 else None
    if not isinstance(annotation, type):
        return None
    if issubclass(annotation, dt.datetime):
        return "datetime"
    if issubclass(annotation, dt.date):
        return "date"
    if issubclass(annotation, bool):
        return "bool"
    for kind, cls in (("int", int), ("float", float), ("str", str)):
        if issubclass(annotation, cls):
            return kind
    return None


def signature_params(
    fn: Callable[..., Any], dag_name: str, reserved: frozenset[str]
) -> dict[str, Param]:
    """Read the run parameters from a DAG function's signature."""
    sig = inspect.signature(fn)
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable forward references: fall back to raw annotations
        hints = {}
    out: dict[str, Param] = {}
    for p in sig.parameters.values():
        if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise DefinitionError(
                f"DAG {dag_name!r} takes *{p.name}; declare each run parameter by name "
                "so that runs can be recorded and re-run identically"
            )
        if p.name in reserved:
            raise DefinitionError(
                f"DAG {dag_name!r} has a parameter named {p.name!r}, which DAG.run() uses "
                "for its own option; rename the parameter "
                f"(reserved: {', '.join(sorted(reserved))})"
            )
        out[p.name] = Param(p.name, p.default, _kind_of(hints.get(p.name, p.annotation)))
    return out


def _bad(dag: str, param: str, value: Any, expected: str, fix: str) -> ParamError:
    return ParamError(
        f"DAG {dag!r}: parameter {param!r}={value!r} is not {expected}; {fix}", param=param
    )


def _convert(dag: str, p: Param, value: Any, tz: str | None) -> Any:  # noqa: PLR0911, PLR0912
    kind = p.kind
    if kind is None or value is None:
        return value
    if kind in ("date", "datetime"):
        import pendulum

        if isinstance(value, str):
            try:
                parsed: Any = pendulum.parse(value, tz=tz or "UTC", exact=True)
            except (ValueError, TypeError, pendulum.parsing.exceptions.ParserError) as exc:
                fmt = "YYYY-MM-DD" if kind == "date" else "YYYY-MM-DDTHH:MM:SS[+zone]"
                raise _bad(dag, p.name, value, f"an ISO {kind}", f"write it as {fmt}") from exc
            value = parsed
        if kind == "date":
            if isinstance(value, dt.datetime):
                raise _bad(
                    dag, p.name, value, "a date (it has a time)", "pass a date like 2024-01-05"
                )
            if isinstance(value, dt.date):
                return pendulum.Date(value.year, value.month, value.day)
            raise _bad(dag, p.name, value, "a date", "pass a date or an ISO string like 2024-01-05")
        if isinstance(value, dt.datetime):
            if value.tzinfo is None:
                return pendulum.instance(value, tz=tz or "UTC")
            # An explicit offset wins, but one that is the DAG zone's at that instant
            # means that zone: a recorded "+01:00" read back for a re-run is
            # Europe/Berlin again, so its date arithmetic is the first run's.
            given = pendulum.instance(value)
            local = given.in_timezone(tz or "UTC")
            return local if local.utcoffset() == given.utcoffset() else given
        if isinstance(value, dt.date):
            return pendulum.datetime(value.year, value.month, value.day, tz=tz or "UTC")
        raise _bad(dag, p.name, value, "a datetime", "pass a datetime or an ISO string")
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise _bad(dag, p.name, value, "a bool", "pass True/False or 'true'/'false'")
    if kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise _bad(dag, p.name, value, "an int", "pass a whole number such as 3")
    if kind == "float":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
        raise _bad(dag, p.name, value, "a float", "pass a number such as 0.5")
    if not isinstance(value, str):
        raise _bad(dag, p.name, value, "a str", "pass a string")
    return value


def bind_params(
    dag: str, declared: Mapping[str, Param], given: Mapping[str, Any], tz: str | None = None
) -> dict[str, Any]:
    """Check ``given`` against ``declared`` and return every parameter, defaults included.

    Raises:
        ParamError: for an unknown or missing parameter, or a value that cannot be
            converted to its declared type; the message names it and says what to do.
    """
    unknown = [k for k in given if k not in declared]
    if unknown:
        known = ", ".join(declared) or "none"
        raise ParamError(
            f"DAG {dag!r} has no parameter {unknown[0]!r}; its parameters are: {known}",
            param=unknown[0],
        )
    out: dict[str, Any] = {}
    for name, p in declared.items():
        if name in given:
            out[name] = _convert(dag, p, given[name], tz)
        elif p.required:
            raise ParamError(
                f"DAG {dag!r} needs parameter {name!r}; pass it, e.g. {dag}.run({name}=...)",
                param=name,
            )
        else:  # converted like a given value: a re-run reads it back from the history
            out[name] = _convert(dag, p, p.default, tz)
    return out


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.date):  # pendulum Date/DateTime included
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(type(value).__name__)


def encode_params(dag: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``params`` as JSON values (dates as ISO strings), for the history.

    Raises:
        ParamError: when a value cannot be recorded as JSON.
    """
    out: dict[str, Any] = {}
    for name, value in params.items():
        if (
            value is None
            or isinstance(value, str | int | bool)
            or (isinstance(value, float) and math.isfinite(value))
        ):
            out[name] = value
            continue
        try:  # NaN and infinity are refused: not JSON, and not every store holds them
            out[name] = json.loads(json.dumps(value, default=_json_default, allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise ParamError(
                f"DAG {dag!r}: parameter {name!r}={value!r} cannot be recorded in the run "
                "history; pass JSON values (str, int, finite float, bool, None, dates, lists "
                "and dicts of them) so the run can be re-run identically",
                param=name,
            ) from exc
    return out


def recorded_key(declared: Mapping[str, Param], params: Mapping[str, Any]) -> str:
    """A key that two runs' recorded ``params`` share when they mean the same values.

    Datetime parameters are compared as instants: a run started by hand with
    ``ts="2024-01-03T05:00:00Z"`` has the interval of a New York DAG's scheduled
    ``2024-01-03T00:00:00-05:00``.
    """
    out: dict[str, Any] = dict(params)
    for name, value in params.items():
        p = declared.get(name)
        if p is not None and p.kind == "datetime" and isinstance(value, str):
            try:
                moment = dt.datetime.fromisoformat(value)
            except ValueError:
                continue
            if moment.tzinfo is not None:
                out[name] = moment.astimezone(dt.UTC).isoformat()
    return json.dumps(out, sort_keys=True, default=str)
