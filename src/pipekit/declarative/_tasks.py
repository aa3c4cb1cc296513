"""The rules of one task of a DAG file: operator, connection, parameters, options.

Split from :mod:`pipekit.declarative._compile` (which applies the file-wide rules and
links the tasks): :class:`TaskRules` checks a task's operator and the names it uses,
and returns, per task, a factory that makes the task's function for each of its
``for_each`` expansions. Every problem is recorded with its location, and checking
goes on, so that one pass finds them all.
"""

from __future__ import annotations

import difflib
import itertools
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from pipekit.declarative import sqltext, substitute
from pipekit.declarative._yaml import Source
from pipekit.declarative.connections import Connection
from pipekit.declarative.errors import DagFileError
from pipekit.declarative.notifiers import FileNotifier, check
from pipekit.declarative.schema import OPERATORS, key_path
from pipekit.errors import DefinitionError, PipekitError
from pipekit.params import Param

__all__ = ["Factory", "FolderOutput", "TaskRules", "in_folder"]

Factory = Callable[[dict[str, Any]], tuple[Callable[..., Any], list[str], dict[str, Any]]]
"""Makes a task's (function, run params it takes, constant kwargs) from for_each values."""

_OWN_KEYS = {"conn": ("sql", "sql_file"), "cwd": ("sh",), "env": ("sh",), "args": ("python",)}
NOTIFY_KEYS = ("on_failure", "on_success", "on_retry")
RETRY_KEYS = ("retries", "retry_delay", "retry_backoff", "retry_max_delay", "retry_jitter")


class FolderOutput(str):
    """An ``output:`` template that starts with a field, relative to the DAG file's folder.

    Where ``{ds}/report.csv`` lands is known only once the field is filled in: the
    engine renders a template with ``template.format_map(params)``, and this template
    joins the rendered path to the folder then (an absolute rendered path stays).
    """

    folder: str

    def __new__(cls, template: str, folder: str) -> FolderOutput:
        """The template, as text, remembering the folder."""
        made = super().__new__(cls, template)
        made.folder = folder
        return made

    def format_map(self, mapping: Mapping[str, Any], /) -> str:  # type: ignore[override]
        """The rendered path, joined to the folder unless it is absolute."""
        return os.path.join(self.folder, str.format_map(self, mapping))

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as (template, folder): tasks cross to worker processes."""
        return (FolderOutput, (str(self), self.folder))


def in_folder(template: str, folder: Path) -> str:
    """An output template whose relative paths start at ``folder`` (the DAG file's)."""
    if template.startswith("/"):
        return template
    if template.startswith("{"):  # the field may render as an absolute path: decide then
        return FolderOutput(template, str(folder))
    escaped = str(folder).replace("{", "{{").replace("}", "}}")
    return f"{escaped}/{template}"


class TaskRules:
    """Checks tasks of a schema-checked document, recording located problems."""

    def __init__(self, source: Source, problems: list[PipekitError]) -> None:
        self.source = source
        self.problems = problems
        self.data: dict[str, Any] = source.data if isinstance(source.data, dict) else {}
        self.folder: Path = source.folder
        self.modules: dict[str, ModuleType] = {}
        self.params: dict[str, Param] = {}
        self.connections: dict[str, Connection] = {}
        self.tz: str | None = None

    def problem(
        self, message: str, where: list[str | int], *, key: bool = False, task: str | None = None
    ) -> None:
        """Record a problem located at ``where`` in the document."""
        if len(where) >= 2 and where[0] == "tasks":
            task = str(where[1])
            name = key_path(list(where[2:])) or None
        else:
            name = key_path(list(where)) or None
        line = self.source.line(where, key=key)
        self.problems.append(
            DagFileError(message, file=self.source.path, line=line, task=task, key=name)
        )

    # -- the DAG's own keys ---------------------------------------------------------------

    def notifiers(self, where: list[str | int]) -> list[FileNotifier]:
        """The notifiers of an ``on_*`` list at ``where``."""
        entries: Any = self.data
        for step in where:
            entries = entries.get(step) if isinstance(entries, dict) else None
        if not isinstance(entries, list):
            return []
        out = []
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or len(entry) != 1:
                continue
            ((kind, options),) = entry.items()
            if kind not in ("webhook", "email") or not isinstance(options, dict):
                continue
            trouble = check(kind, options)
            if trouble:
                self.problem(trouble, [*where, i, kind])
                continue
            origin = f"{self.source.path}:{self.source.line([*where, i])}"
            out.append(FileNotifier(kind, options, origin))
        return out

    def expansions(self, name: str, spec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """(id, for_each values) for each task a written task expands into."""
        loops = spec.get("for_each")
        if not isinstance(loops, dict) or not loops:
            return [(name, {})]
        ok = True
        for var, values in loops.items():
            if not isinstance(var, str):
                ok = False  # the schema reported it
            elif var in self.params:
                self.problem(
                    f"for_each name {var!r} is also a run parameter; rename one of them",
                    ["tasks", name, "for_each", var],
                    key=True,
                )
                ok = False
            if not isinstance(values, list) or not values:
                ok = False
        if not ok:
            return []
        names = list(loops)
        out: list[tuple[str, dict[str, Any]]] = []
        for combo in itertools.product(*(loops[n] for n in names)):
            tid = f"{name}[{','.join(substitute.text_of(v) for v in combo)}]"
            if any(tid == seen for seen, _ in out):
                self.problem(
                    f"for_each gives the task id {tid!r} twice; make the values distinct",
                    ["tasks", name, "for_each"],
                )
                return []
            out.append((tid, dict(zip(names, combo, strict=True))))
        return out

    def check_refs(self, text: str, known: set[str], where: list[str | int]) -> None:
        """``${name}`` in an argument must name a run parameter or for_each name."""
        try:
            found = substitute.refs(text, fallbacks=False)
        except ValueError as exc:
            self.problem(str(exc), where)
            return
        for ref in found:
            if ref.name not in known:
                self.problem(self.unknown_param(ref.name, known, f"${{{ref.name}}}"), where)

    def unknown_param(self, name: str, known: set[str], shown: str) -> str:
        """The message for a reference to a name that is not a parameter."""
        close = difflib.get_close_matches(name, sorted(known), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        listed = ", ".join(sorted(known)) or "none (declare it under params:)"
        return f"{shown} names no run parameter; {hint}known names: {listed}"

    def check_sql(self, script: str, known: set[str], where: list[str | int], origin: str) -> None:
        reported: set[str] = set()  # each unknown name once, at its first statement
        for st in sqltext.split(script):
            for p in st.params:
                if p not in known and p not in reported:
                    reported.add(p)
                    place = f" ({origin} line {st.line})" if origin else ""
                    self.problem(self.unknown_param(p, known, f"the SQL's ${p}{place}"), where)

    def connection(
        self, name: str, spec: dict[str, Any], defaults: dict[str, Any]
    ) -> Connection | None:
        conn = spec.get("conn", defaults.get("conn"))
        where: list[str | int] = ["tasks", name, "conn"] if "conn" in spec else ["defaults", "conn"]
        if not isinstance(conn, str):
            self.problem(
                "an sql task needs conn: (a name from connections:, or a URL such as "
                "duckdb:///warehouse.duckdb), here or under defaults:",
                ["tasks", name],
                key=True,
                task=name,
            )
            return None
        if conn in self.connections:
            return self.connections[conn]
        if "://" in conn or conn.startswith("${"):
            found = Connection(conn, conn, self.folder)
            trouble = found.problem()
            if trouble:
                self.problem(trouble, where)
                return None
            return found
        close = difflib.get_close_matches(conn, list(self.connections), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        listed = ", ".join(self.connections) or "none declared"
        self.problem(
            f"{conn!r} is not a connection; {hint}connections: {listed} (or give a URL)", where
        )
        return None

    def operator(
        self, name: str, spec: dict[str, Any], defaults: dict[str, Any], known: set[str]
    ) -> tuple[str, Factory] | None:
        """The task's operator kind, and a factory of (fn, params, constants) per expansion."""
        ops = [k for k in OPERATORS if k in spec]
        if not ops:
            self.problem(
                "has no operator; give exactly one of sh:, sql:, sql_file:, python:",
                ["tasks", name],
                key=True,
                task=name,
            )
            return None
        if len(ops) > 1:
            self.problem(
                f"has {' and '.join(o + ':' for o in ops)}; give exactly one operator per task "
                "(split the work into two tasks joined by depends_on)",
                ["tasks", name, ops[1]],
                key=True,
            )
            return None
        op = ops[0]
        for key, owners in _OWN_KEYS.items():
            if key in spec and op not in owners:
                self.problem(
                    f"applies only to {' and '.join(o + ':' for o in owners)} tasks, and this "
                    f"task is {op}:",
                    ["tasks", name, key],
                    key=True,
                )
        if op == "sh":
            made, kind = self.sh(name, spec, defaults, known), "sh"
        elif op in ("sql", "sql_file"):
            made, kind = self.sql(name, op, spec, defaults, known), "sql"
        else:
            made, kind = self.python(name, spec, known), "python"
        return None if made is None else (kind, made)

    def sh(
        self, name: str, spec: dict[str, Any], defaults: dict[str, Any], known: set[str]
    ) -> Factory | None:
        """An ``sh`` task: ``${name}`` in list elements must be known names."""
        from pipekit.declarative.operators import Shell

        value = spec["sh"]
        if isinstance(value, list):
            args = [self.as_written(a, ["tasks", name, "sh", i]) for i, a in enumerate(value)]
            for i, arg in enumerate(args):
                self.check_refs(arg, known, ["tasks", name, "sh", i])
            command: str | tuple[str, ...] = tuple(args)
        elif isinstance(value, str):
            command = value
        else:
            return None
        env: dict[str, str] = {}
        for where in (["defaults", "env"], ["tasks", name, "env"]):
            layer = (defaults if where[0] == "defaults" else spec).get("env")
            if isinstance(layer, dict):
                env.update({str(k): self.as_written(v, [*where, k]) for k, v in layer.items()})
        cwd = spec.get("cwd", defaults.get("cwd"))
        folder = str((self.folder / cwd) if isinstance(cwd, str) else self.folder)
        timeout = spec.get("timeout", defaults.get("timeout"))
        limit = float(timeout) if isinstance(timeout, int | float) and timeout > 0 else None
        params = list(self.params)

        def make(consts: dict[str, Any]) -> tuple[Callable[..., Any], list[str], dict[str, Any]]:
            return Shell(command, folder, env, consts, limit), params, {}

        return make

    def as_written(self, value: Any, where: list[str | int]) -> str:
        """A scalar's text as the file writes it: ``ZIP: 02134`` is ``02134``, not ``2134``."""
        if isinstance(value, str):
            return value
        written = self.source.written(where)
        return substitute.text_of(value) if written is None else written

    def sql(
        self,
        name: str,
        op: str,
        spec: dict[str, Any],
        defaults: dict[str, Any],
        known: set[str],
    ) -> Factory | None:
        """An ``sql``/``sql_file`` task: a known connection, a readable file, known $names."""
        from pipekit.declarative.operators import Sql

        value = spec[op]
        if not isinstance(value, str):
            return None
        where: list[str | int] = ["tasks", name, op]
        text: str | None
        path: str | None
        if op == "sql":
            self.check_sql(value, known, where, "")
            offset = self.source.line(where) or 1
            offset -= 0 if self.source.is_block(where) else 1
            origin, text, path = str(self.source.path), value, None
        else:
            file = (self.folder / value).resolve()
            try:
                script = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                self.problem(
                    f"cannot read {value!r} ({file}): {type(exc).__name__}; the path is "
                    "relative to the DAG file's folder",
                    where,
                )
                script = None
            if script is not None:
                self.check_sql(script, known, where, value)
            offset, origin, text, path = 0, value, None, str(file)
        conn = self.connection(name, spec, defaults)
        if conn is None or (op == "sql_file" and script is None):
            return None
        params = list(self.params)

        def make(consts: dict[str, Any]) -> tuple[Callable[..., Any], list[str], dict[str, Any]]:
            return Sql(conn, origin, text, path, consts, offset), params, {}

        return make

    def python(self, name: str, spec: dict[str, Any], known: set[str]) -> Factory | None:
        """A ``python`` task: the reference imports, and the task can fill its arguments."""
        from pipekit.declarative.operators.python import plan_call, resolve

        value = spec["python"]
        if not isinstance(value, str):
            return None
        try:
            target = resolve(value, self.folder, self.modules)
        except ValueError as exc:
            self.problem(f"{value!r} does not import: {exc}", ["tasks", name, "python"])
            return None
        raw = spec.get("args")
        args: dict[str, Any] = raw if isinstance(raw, dict) else {}
        taken, troubles = plan_call(target, known, args)
        for trouble in troubles:
            self.problem(f"{value}: {trouble}", ["tasks", name, "python"])
        if troubles:
            return None

        def make(consts: dict[str, Any]) -> tuple[Callable[..., Any], list[str], dict[str, Any]]:
            run = [p for p in taken if p not in consts]
            given = {**{p: consts[p] for p in taken if p in consts}, **args}
            return target, run, given

        return make

    def options(
        self, name: str, spec: dict[str, Any], defaults: dict[str, Any], known: set[str]
    ) -> dict[str, Any] | None:
        out: dict[str, Any] = {}
        for key in (*RETRY_KEYS, "timeout"):
            value = spec.get(key, defaults.get(key))
            if isinstance(value, int | float) and not isinstance(value, bool):
                out[key] = value  # a value of another type was reported by the schema
        output = spec.get("output")
        if isinstance(output, str):
            from pipekit.outputs import output_fields

            try:
                fields = output_fields(output)
            except DefinitionError as exc:
                self.problem(str(exc), ["tasks", name, "output"])
                return None
            for f in fields:
                if f not in known:
                    self.problem(
                        self.unknown_param(f, known, f"the field {{{f}}}"),
                        ["tasks", name, "output"],
                    )
                    return None
            out["output"] = output  # made relative to the folder per expansion: in_folder
        for key in NOTIFY_KEYS:
            found = self.notifiers(["tasks", name, key])
            if found:
                out[key] = found
        return out
