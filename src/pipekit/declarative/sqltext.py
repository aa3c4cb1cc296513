"""Reading SQL scripts: statements, the ``$name`` parameters they use, and their lines.

A small scanner that knows where SQL text is not code: quoted strings (``'...'``),
quoted identifiers (``"..."``), comments (``--`` and ``/* */``) and PostgreSQL's
dollar-quoted bodies (``$$...$$``, ``$tag$...$tag$``). Outside those, ``$name`` is a
parameter and ``;`` ends a statement. So ``'$5 off'`` is text, not a parameter, and a
``;`` inside a string does not split a statement.

The statements keep their ``$name`` placeholders: SQLite and DuckDB bind them natively;
for psycopg, :func:`to_pyformat` rewrites them to ``%(name)s``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["Statement", "join_sqlite", "split", "to_pyformat"]

_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")
_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_WORD = re.compile(r"[A-Za-z0-9_$]")


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement of a script.

    Attributes:
        text: the statement as written, without the ending ``;``.
        line: the 1-based line of the script where its code starts.
        params: the ``$name`` parameters it uses, in order of first use.
        start: its offset in the script.
        end: the offset just past it (before the ``;``).
    """

    text: str
    line: int
    params: tuple[str, ...]
    start: int
    end: int


def _scan(text: str) -> Iterator[tuple[str, int, int]]:  # noqa: PLR0912 - one branch per form
    """Yield (kind, start, end) for each ``param``, ``end`` (a ``;``) and ``code`` char."""
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in "'\"":
            j = i + 1
            while j < n:
                if text[j] == c:
                    if j + 1 < n and text[j + 1] == c:  # a doubled quote stays inside
                        j += 2
                        continue
                    break
                j += 1
            yield "code", i, min(j + 1, n)
            i = j + 1
        elif text.startswith("--", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
        elif c == "$" and (i == 0 or not _WORD.match(text[i - 1])):
            tag = _TAG.match(text, i)
            if tag is not None:
                j = text.find(tag.group(0), tag.end())
                end = n if j < 0 else j + len(tag.group(0))
                yield "code", i, end
                i = end
                continue
            param = _PARAM.match(text, i)
            if param is not None:
                yield "param", i, param.end()
                i = param.end()
            else:
                yield "code", i, i + 1
                i += 1
        elif c == ";":
            yield "end", i, i + 1
            i += 1
        else:
            if not c.isspace():
                yield "code", i, i + 1
            i += 1


def split(script: str) -> list[Statement]:
    """The statements of ``script`` in order (empty and comment-only ones left out)."""
    out: list[Statement] = []
    first: int | None = None
    params: list[str] = []

    def close(end: int) -> None:
        if first is not None:
            line = script.count("\n", 0, first) + 1
            out.append(Statement(script[first:end].rstrip(), line, tuple(params), first, end))

    for kind, s, e in _scan(script):
        if kind == "end":
            close(s)
            first, params = None, []
            continue
        if first is None:
            first = s
        if kind == "param":
            name = script[s + 1 : e]
            if name not in params:
                params.append(name)
    close(len(script))
    return out


def join_sqlite(script: str, statements: list[Statement]) -> list[Statement]:
    """Join pieces SQLite reads as one statement (a trigger's ``BEGIN ...; END``)."""
    import sqlite3

    out: list[Statement] = []
    pending: list[Statement] = []
    for st in statements:
        pending.append(st)
        text = script[pending[0].start : st.end]
        if sqlite3.complete_statement(text + ";"):
            names = list(dict.fromkeys(p for piece in pending for p in piece.params))
            out.append(Statement(text, pending[0].line, tuple(names), pending[0].start, st.end))
            pending = []
    if pending:
        text = script[pending[0].start : pending[-1].end]
        names = list(dict.fromkeys(p for piece in pending for p in piece.params))
        out.append(Statement(text, pending[0].line, tuple(names), pending[0].start, len(script)))
    return out


def to_pyformat(statement: str) -> str:
    """``$name`` to ``%(name)s``, and every other ``%`` doubled (psycopg's placeholders)."""
    parts: list[str] = []
    pos = 0
    for kind, s, e in _scan(statement):
        if kind != "param":
            continue
        parts.append(statement[pos:s].replace("%", "%%"))
        parts.append(f"%({statement[s + 1 : e]})s")
        pos = e
    parts.append(statement[pos:].replace("%", "%%"))
    return "".join(parts)
