"""The JSON Schema of DAG files, and its violations as located, readable problems.

One schema serves two readers: ``pipekit schema`` prints it for editors (the YAML
language server completes and checks DAG files with it, showing the descriptions
below on hover), and :func:`problems` checks each file against it with the
``jsonschema`` library (Draft 2020-12) before the rules that need more than a schema
(operators, references between tasks, SQL parameters, imports) are checked. Each
violation becomes one :class:`~pipekit.declarative.errors.DagFileError` naming the
line, the task and the key, and saying what is allowed; an unknown key suggests the
closest known one.
"""

from __future__ import annotations

import difflib
from functools import cache
from typing import TYPE_CHECKING, Any

from pipekit.declarative.errors import DagFileError

if TYPE_CHECKING:
    import jsonschema
    from yaml.nodes import Node

    from pipekit.declarative._yaml import Source

__all__ = ["SCHEMA", "TASK_KEYS", "key_path", "problems"]

IDENTIFIER = "^[A-Za-z_][A-Za-z0-9_]*$"
NAME = "^[A-Za-z0-9_][A-Za-z0-9_.-]*$"

_PATTERNS = {
    IDENTIFIER: "letters, digits and _, not starting with a digit",
    NAME: "letters, digits, _, . and -, starting with a letter, digit or _",
    "^[^:]+:[A-Za-z_][A-Za-z0-9_]*$": "'module:function' or 'path/to/file.py:function'",
}

_SCALAR = {"type": ["string", "number", "boolean"]}


def _num(description: str, **bounds: float) -> dict[str, Any]:
    return {"type": "number", "description": description, **bounds}


_OPTIONS: dict[str, dict[str, Any]] = {
    "retries": {
        "type": "integer",
        "minimum": 0,
        "description": "Retries after the first attempt (0: one attempt).",
    },
    "retry_delay": _num("Seconds before the first retry.", minimum=0),
    "retry_backoff": _num("Delay multiplier per retry: 1 fixed, 2 doubling.", minimum=1),
    "retry_max_delay": _num("Cap on any single retry delay, in seconds.", minimum=0),
    "retry_jitter": _num("Up to this many random seconds added to each delay.", minimum=0),
    "timeout": _num(
        "Seconds per attempt; a longer attempt fails with TaskTimeout (an sh task's "
        "process group is killed).",
        exclusiveMinimum=0,
    ),
    "conn": {
        "type": "string",
        "description": "sql/sql_file: a name from connections, or a URL "
        "(sqlite:///, duckdb:///, postgresql://).",
    },
    "cwd": {
        "type": "string",
        "description": "sh: the folder the command runs in, relative to the DAG file "
        "(default: the DAG file's folder).",
    },
    "env": {
        "type": "object",
        "additionalProperties": _SCALAR,
        "description": "sh: environment variables added for the command (values as "
        "written: the shell expands $VAR in a command string).",
    },
}

_NOTIFIERS: dict[str, Any] = {
    "type": "array",
    "items": {"$ref": "#/$defs/notifier"},
    "description": "Notifiers: a list of {webhook: {...}} and {email: {...}} entries; "
    "${VAR} in an option reads an environment variable when the notifier fires.",
}

TASK_KEYS: dict[str, dict[str, Any]] = {
    "sh": {
        "type": ["string", "array"],
        "minLength": 1,
        "minItems": 1,
        "items": {"type": ["string", "number"]},
        "description": "A command for /bin/sh -c (params are environment variables: $ds), "
        "or a list [program, arg, ...] run without a shell (${ds} in an element is the "
        "param's value, as one argument).",
    },
    "sql": {
        "type": "string",
        "minLength": 1,
        "description": "SQL statements run on conn in one transaction; $name is a param, "
        "bound as a query parameter.",
    },
    "sql_file": {
        "type": "string",
        "minLength": 1,
        "description": "A file of SQL statements (relative to the DAG file), run like sql.",
    },
    "python": {
        "type": "string",
        "pattern": "^[^:]+:[A-Za-z_][A-Za-z0-9_]*$",
        "description": "'module:function' or 'path/to/file.py:function' (relative to the "
        "DAG file), called with the params it names and args.",
    },
    "args": {
        "type": "object",
        "description": "python: constant keyword arguments for the function.",
    },
    "description": {"type": "string", "description": "What the task does (for readers)."},
    "depends_on": {
        "type": ["string", "array"],
        "items": {"type": "string"},
        "uniqueItems": True,
        "description": "Tasks that must succeed first (a for_each task: all its expansions).",
    },
    "for_each": {
        "type": "object",
        "minProperties": 1,
        "propertyNames": {"pattern": IDENTIFIER},
        "additionalProperties": {"type": "array", "minItems": 1, "items": _SCALAR},
        "description": "{name: [value, ...]}: one task per value (ids task[value]), with "
        "$name available like a param; several names expand to every combination.",
    },
    "output": {
        "type": "string",
        "description": "The file the task produces, as a template of params and for_each "
        "names ('out/{ds}.csv', relative to the DAG file); when it exists the task is "
        "skipped.",
    },
    **_OPTIONS,
    "on_failure": {**_NOTIFIERS, "description": "Notifiers called when the task fails."},
    "on_success": {**_NOTIFIERS, "description": "Notifiers called when the task succeeds."},
    "on_retry": {**_NOTIFIERS, "description": "Notifiers called when the task is retried."},
}
"""Every key a task may have, with its schema."""

OPERATORS = ("sh", "sql", "sql_file", "python")

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "pipekit DAG file",
    "description": "A declarative pipekit workflow: params, connections and tasks "
    "(sh, sql, sql_file, python) that run on pipekit's engine.",
    "type": "object",
    "additionalProperties": False,
    "required": ["tasks"],
    "properties": {
        "name": {
            "type": "string",
            "pattern": NAME,
            "description": "The DAG's name (default: the file name without .yml).",
        },
        "description": {"type": "string", "description": "What the DAG does."},
        "schedule": {
            "type": ["string", "null"],
            "description": "A 5-field cron string or a preset (@hourly, @daily, @weekly, "
            "@monthly, @yearly); none: runs only when started.",
        },
        "start": {
            "type": "string",
            "description": "The first logical date the scheduler runs (YYYY-MM-DD).",
        },
        "tz": {
            "type": "string",
            "description": "The IANA timezone of the schedule and of dates (default UTC).",
        },
        "catchup": {
            "type": "boolean",
            "description": "Run every missed interval since start (true, the default) or "
            "only the latest.",
        },
        "max_active_runs": {
            "type": "integer",
            "minimum": 1,
            "description": "Runs of this DAG the scheduler keeps going at once (default 1).",
        },
        "params": {
            "type": "object",
            "propertyNames": {"pattern": IDENTIFIER},
            "additionalProperties": {"$ref": "#/$defs/param"},
            "description": "Run parameters: name to {type, default}; no default: required.",
        },
        "connections": {
            "type": "object",
            "propertyNames": {"pattern": NAME},
            "additionalProperties": {"type": "string"},
            "description": "Database URLs by name: sqlite:///path, duckdb:///path (relative "
            "to this file), postgresql://...; ${VAR} reads an environment variable.",
        },
        "defaults": {
            "type": "object",
            "additionalProperties": False,
            "properties": _OPTIONS,
            "description": "Options applied to every task that does not set them.",
        },
        "on_failure": {**_NOTIFIERS, "description": "Notifiers called when a run fails."},
        "on_success": {**_NOTIFIERS, "description": "Notifiers called when a run succeeds."},
        "on_retry": {**_NOTIFIERS, "description": "Notifiers called when any task is retried."},
        "tasks": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": NAME},
            "additionalProperties": {"$ref": "#/$defs/task"},
            "description": "The tasks, by name, in the order written.",
        },
    },
    "$defs": {
        "param": {
            "type": "object",
            "additionalProperties": False,
            "required": ["type"],
            "properties": {
                "type": {
                    "enum": ["date", "datetime", "str", "int", "float", "bool"],
                    "description": "How values are read: dates from ISO text, and so on.",
                },
                "default": {
                    "type": ["string", "number", "boolean", "null"],
                    "description": "The value when a run does not give one.",
                },
                "description": {"type": "string", "description": "What the param means."},
            },
        },
        "notifier": {
            "type": "object",
            "minProperties": 1,
            "maxProperties": 1,
            "additionalProperties": False,
            "properties": {
                "webhook": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["url"],
                    "description": "POST a JSON message (Slack-style 'text' and fields).",
                    "properties": {
                        "url": {"type": "string", "description": "The endpoint."},
                        "headers": {
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                            "description": "Extra HTTP headers.",
                        },
                        "timeout": _num("Seconds to wait for the server.", exclusiveMinimum=0),
                    },
                },
                "email": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["host", "port", "sender", "to"],
                    "description": "Send a plain-text email through an SMTP server.",
                    "properties": {
                        "host": {"type": "string", "description": "The SMTP server."},
                        "port": {
                            "type": ["integer", "string"],
                            "description": "Its port (25, 587 for STARTTLS, ...).",
                        },
                        "sender": {"type": "string", "description": "The From address."},
                        "to": {
                            "type": ["string", "array"],
                            "items": {"type": "string"},
                            "description": "One recipient or a list of them.",
                        },
                        "starttls": {"type": "boolean", "description": "Upgrade with STARTTLS."},
                        "username": {"type": "string", "description": "Log in as this user."},
                        "password": {
                            "type": "string",
                            "description": "The password (write ${VAR}, never the secret).",
                        },
                        "timeout": _num("Seconds to wait for the server.", exclusiveMinimum=0),
                        "subject_prefix": {
                            "type": "string",
                            "description": "Put before every subject (default [pipekit]).",
                        },
                    },
                },
            },
        },
        "task": {
            "type": "object",
            "additionalProperties": False,
            "properties": TASK_KEYS,
            "oneOf": [{"required": [op]} for op in OPERATORS],
        },
    },
}
"""The JSON Schema (Draft 2020-12) of a DAG file, as ``pipekit schema`` prints it."""


@cache
def _validator() -> jsonschema.protocols.Validator:
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(SCHEMA)
    return Draft202012Validator(SCHEMA)


def key_path(path: list[str | int] | tuple[str | int, ...]) -> str:
    """``on_failure[0].webhook.url``: a path into the document as a key name."""
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else str(step))
    return out


def _where(path: list[str | int]) -> tuple[str | None, str | None]:
    """(task, key) for a path into the document."""
    if len(path) >= 2 and path[0] == "tasks" and isinstance(path[1], str):
        return path[1], key_path(path[2:]) or None
    return None, key_path(path) or None


_TYPE_NAMES = {
    "string": "text",
    "number": "a number",
    "integer": "a whole number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping (key: value lines)",
    "null": "empty",
}


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "empty"
    return repr(value)


def _explain(  # noqa: PLR0911, PLR0912 - a dispatch: one message per kind of rule
    error: jsonschema.ValidationError, source: Source
) -> list[DagFileError]:
    path: list[str | int] = list(error.absolute_path)
    kind = error.validator
    value: Any = error.validator_value
    schema = error.schema if isinstance(error.schema, dict) else {}

    def at(
        message: str, where: list[str | int], *, key: bool = False, missing: str | None = None
    ) -> DagFileError:
        task, name = _where([*where, missing] if missing else where)
        return DagFileError(
            message, file=source.path, line=source.line(where, key=key), task=task, key=name
        )

    if "propertyNames" in error.relative_schema_path:
        name = str(error.instance)
        rule = _PATTERNS.get(schema.get("pattern", ""), "a plain name")
        what = "task names" if path == ["tasks"] else "names here"
        return [at(f"the name {name!r} is not allowed: {what} use {rule}", [*path, name], key=True)]
    if kind == "additionalProperties" and isinstance(error.instance, dict):
        allowed = list(schema.get("properties", {}))
        out = []
        # A key YAML read as a number, a boolean or null is reported by _key_types.
        for extra in (k for k in error.instance if k not in allowed and isinstance(k, str)):
            close = difflib.get_close_matches(str(extra), allowed, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            out.append(
                at(
                    f"unknown key{hint} (allowed here: {', '.join(allowed)})",
                    [*path, str(extra)],
                    key=True,
                )
            )
        return out
    if kind == "required" and isinstance(error.instance, dict):
        return [
            at(f"missing key {name!r}, which is required here", path, missing=name)
            for name in value
            if name not in error.instance
        ]
    if kind == "oneOf" and all(isinstance(s, dict) and set(s) == {"required"} for s in value):
        return []  # which operator a task has is checked with a better message later
    if kind == "type":
        wanted = value if isinstance(value, list) else [value]
        names = " or ".join(_TYPE_NAMES.get(str(w), str(w)) for w in wanted)
        if not path:
            return [at("the file must be a mapping of keys such as name:, params: and tasks:", [])]
        return [at(f"is {_shown(error.instance)}, but must be {names}", path)]
    if kind == "enum":
        options = ", ".join(str(v) for v in value)
        return [at(f"{_shown(error.instance)} is not allowed; use one of: {options}", path)]
    if kind in ("minimum", "exclusiveMinimum"):
        sign = ">=" if kind == "minimum" else ">"
        return [at(f"{error.instance!r} is too small; give a number {sign} {value}", path)]
    if kind in ("minItems", "minProperties", "minLength"):
        return [at("must not be empty", path)]
    if kind == "maxProperties":
        return [at("give one notifier per list item: - webhook: {...} or - email: {...}", path)]
    if kind == "uniqueItems":
        return [at("lists the same task twice", path)]
    if kind == "pattern":
        rule = _PATTERNS.get(str(value), f"the pattern {value}")
        return [at(f"{error.instance!r} is not allowed; write {rule}", path)]
    return [at(error.message, path)]


_READ_AS = {"int": "a number", "float": "a number", "bool": "true or false", "null": "null"}


def _what(path: list[str | int]) -> str:
    """What a key at ``path`` names, for messages: ``task name``, ``param name``, ..."""
    tops = {"tasks": "task name", "params": "param name", "connections": "connection name"}
    if len(path) == 1 and path[0] in tops:
        return tops[str(path[0])]
    if path[-1:] == ["for_each"]:
        return "for_each name"
    if path[-1:] == ["env"]:
        return "environment variable name"
    if path[-1:] == ["args"]:
        return "argument name"
    return "key"


def _key_types(
    node: Node | None, path: list[str | int], source: Source, seen: set[int]
) -> list[DagFileError]:
    """Keys YAML reads as a number, boolean or null (``1:``, ``2024:``, ``~:``).

    Names are text; JSON Schema's ``pattern`` skips keys that are not, so they are
    found here, on the node tree, where the key's text as written is known. Mappings
    inside an ``args:`` value are the function's data and may have any keys. A node
    reached again through an alias (``*x``, perhaps inside itself, or a key merged in by
    ``<<:``) is checked once.
    """
    from yaml.nodes import MappingNode, ScalarNode, SequenceNode

    if (len(path) >= 4 and path[0] == "tasks" and path[2] == "args") or id(node) in seen:
        return []
    seen.add(id(node))
    found: list[DagFileError] = []
    if isinstance(node, MappingNode):
        for k, v in node.value:
            if not isinstance(k, ScalarNode):
                continue  # a complex key fails while the file is read
            kind = str(k.tag).rsplit(":", 1)[-1]
            if kind in _READ_AS and k.style is None:
                if id(k) in seen:  # merged in by ``<<:`` from a mapping reported already
                    continue
                seen.add(id(k))
                task, name = _where(path)
                written = str(k.value)
                fix = f"quote it: '{written}'" if written else "write a name"
                found.append(
                    DagFileError(
                        f"{_what(path)} {written or '(empty)'} is read by YAML as "
                        f"{_READ_AS[kind]}; {fix}",
                        file=source.path,
                        line=int(k.start_mark.line) + 1,
                        task=task,
                        key=name,
                    )
                )
                continue
            found.extend(_key_types(v, [*path, str(k.value)], source, seen))
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            found.extend(_key_types(item, [*path, i], source, seen))
    return found


def problems(source: Source) -> list[DagFileError]:
    """Every violation of :data:`SCHEMA` in ``source``, in the order of the file's lines.

    Also every key that YAML reads as something other than text (``1:``, ``~:``), which
    JSON Schema's name patterns cannot see.
    """
    found: list[DagFileError] = _key_types(source.root, [], source, set())
    for error in _validator().iter_errors(source.data):
        found.extend(_explain(error, source))
    found.sort(key=lambda e: e.line or 0)
    return found
