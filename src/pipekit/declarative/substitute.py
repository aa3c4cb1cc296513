"""The two ``${...}`` substitutions of DAG files, and how values become text.

* In connection URLs and notifier options, ``${VAR}`` reads an environment variable
  when the value is used (``${VAR:-fallback}`` when it may be unset), so secrets stay
  out of the file and ``pipekit validate`` needs none of them.
* In an ``sh`` argument list, ``${name}`` is a run parameter's (or ``for_each``
  variable's) value, placed inside that one argument: no shell ever parses it.

``$${`` writes a literal ``${`` in both. Values become text as the shell and the
environment see them: dates in ISO form, booleans as ``true``/``false``, None as empty.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipekit.errors import PipekitError

__all__ = ["Ref", "expand_env", "parse", "refs", "render", "text_of"]

_TOKEN = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{")


@dataclass(frozen=True, slots=True)
class Ref:
    """A ``${name}`` (or ``${name:-fallback}``) inside a text."""

    name: str
    fallback: str | None = None


def parse(text: str, *, fallbacks: bool) -> list[str | Ref]:
    """Split ``text`` into literal pieces and :class:`Ref` s.

    Raises:
        ValueError: a ``${`` that is not a well-formed reference (the message says why),
            or a ``:-fallback`` where fallbacks are not allowed.
    """
    out: list[str | Ref] = []
    pos = 0
    for m in _TOKEN.finditer(text):
        out.append(text[pos : m.start()])
        pos = m.end()
        token = m.group(0)
        if token == "$${":
            out.append("${")
        elif m.group(1) is None:
            raise ValueError(
                f"{text!r} has a '${{' that does not start a reference such as ${{name}}; "
                "write $${ for a literal '${'"
            )
        elif m.group(2) is not None and not fallbacks:
            raise ValueError(f"{token!r}: a ':-fallback' is allowed only for environment variables")
        else:
            out.append(Ref(m.group(1), m.group(2)))
    out.append(text[pos:])
    return [p for p in out if p != ""]


def refs(text: str, *, fallbacks: bool) -> list[Ref]:
    """The references in ``text`` (see :func:`parse`)."""
    return [p for p in parse(text, fallbacks=fallbacks) if isinstance(p, Ref)]


def text_of(value: Any) -> str:
    """A value as text for the environment or an argument: ISO dates, ``true``/``false``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.date):  # pendulum Date and DateTime included
        return value.isoformat()
    return str(value)


def render(text: str, values: Mapping[str, Any]) -> str:
    """Replace each ``${name}`` in ``text`` with ``text_of(values[name])``.

    Raises:
        KeyError: a name has no value (load-time validation rules this out).
    """
    return "".join(
        p if isinstance(p, str) else text_of(values[p.name]) for p in parse(text, fallbacks=False)
    )


def expand_env(text: str, environ: Mapping[str, str], what: str) -> str:
    """Replace each ``${VAR}`` in ``text`` with the environment variable's value.

    Args:
        text: the text as written in the file.
        environ: the environment to read (``os.environ``).
        what: what the text is, for the error message ("connection 'warehouse'").

    Raises:
        PipekitError: a variable without a ``:-fallback`` is not set.
    """
    out = []
    for p in parse(text, fallbacks=True):
        if isinstance(p, str):
            out.append(p)
        elif p.name in environ:
            out.append(environ[p.name])
        elif p.fallback is not None:
            out.append(p.fallback)
        else:
            raise PipekitError(
                f"{what} reads the environment variable {p.name!r}, which is not set; set it "
                f"(export {p.name}=...) or write ${{{p.name}:-fallback}} in the DAG file"
            )
    return "".join(out)
