"""From a parsed DAG file to a plan of tasks, finding every problem on the way.

The schema has checked shapes and types; this module checks what needs the whole
file or the outside world: one operator per task, references between tasks,
connections and parameters, SQL files and their ``$name`` s, Python references that
must import, schedules and timezones, cycles. It keeps going after a problem, so
``pipekit validate`` reports all of them at once, and only a file without problems
yields a :class:`Plan`, which :mod:`pipekit.declarative._build` turns into a DAG.
"""

from __future__ import annotations

import difflib
import keyword
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipekit.declarative import substitute
from pipekit.declarative._tasks import NOTIFY_KEYS, TaskRules, in_folder
from pipekit.declarative._yaml import Source
from pipekit.declarative.connections import Connection
from pipekit.declarative.errors import locate
from pipekit.errors import CycleError, DefinitionError, ParamError, PipekitError
from pipekit.params import Param

__all__ = ["Blueprint", "Plan", "compile_source"]

_KINDS = ("date", "datetime", "str", "int", "float", "bool")


@dataclass
class Blueprint:
    """One task of the DAG to build (a ``for_each`` task yields one per value).

    Attributes:
        id: the task's id (``name`` or ``name[value]``).
        written: the task's name as written in the file.
        kind: its operator: "sh", "sql" or "python".
        fn: the task's function.
        options: keyword arguments of :func:`pipekit.task` (retries, timeout, ...).
        params: run parameters passed to ``fn`` by name.
        constants: constant keyword arguments of ``fn``.
        upstream: ids of the tasks it waits for.
    """

    id: str
    written: str
    kind: str
    fn: Callable[..., Any]
    options: dict[str, Any]
    params: list[str]
    constants: dict[str, Any]
    upstream: list[str] = field(default_factory=list)


@dataclass
class Plan:
    """A checked DAG file, ready to build."""

    source: Source
    name: str
    description: str | None
    params: dict[str, Param]
    dag_options: dict[str, Any]
    tasks: list[Blueprint]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _bind_output(template: str, constants: Mapping[str, Any]) -> str:
    """Fill the ``for_each`` fields of an output template, keeping the others.

    Raises:
        ValueError: a field cannot format its value (``{region:03d}`` with ``eu``), or
            names a method of it (``{region.upper}``); the message says which.
    """
    formatter = string.Formatter()
    out = []
    for literal, name, spec, conv in formatter.parse(template):
        out.append(literal.replace("{", "{{").replace("}", "}}"))
        if name is None:
            continue
        written = "{" + name + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "") + "}"
        base = name.split(".", 1)[0].split("[", 1)[0]
        if base not in constants:
            out.append(written)
            continue
        value = constants[base]
        try:
            found = formatter.convert_field(formatter.get_field(name, (), constants)[0], conv)
            if spec or name != base or conv:
                shown = format(found, spec or "")
            else:
                shown = substitute.text_of(found)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            raise ValueError(
                f"the field {written} cannot show the for_each value {value!r} "
                f"({type(exc).__name__}: {exc}); write {{{base}}} or a format that fits "
                "every value"
            ) from exc
        if callable(found):
            raise ValueError(
                f"the field {written} names a method of the for_each value {value!r}, not "
                f"a value; write {{{base}}}"
            )
        out.append(shown.replace("{", "{{").replace("}", "}}"))
    return "".join(out)


class _Compiler(TaskRules):
    """Walks a schema-checked document; collects problems and blueprints."""

    def __init__(self, source: Source, problems: list[PipekitError]) -> None:
        super().__init__(source, problems)
        self.expanded: dict[str, list[str]] = {}  # written name -> ids
        self.upstream: dict[str, list[str]] = {}  # id -> ids it waits for

    def read_params(self) -> None:
        from pipekit.dag import RESERVED
        from pipekit.params import bind_params

        declared = self.data.get("params")
        if not isinstance(declared, dict):
            return
        for name, spec in declared.items():
            where: list[str | int] = ["params", name]
            if not isinstance(spec, dict) or spec.get("type") not in _KINDS:
                continue  # the schema reported it
            if not isinstance(name, str) or not name.isidentifier():
                continue  # the schema reported it
            if keyword.iskeyword(name) or name in RESERVED or name.startswith("PIPEKIT_"):
                self.problem(
                    f"{name!r} cannot name a parameter (a Python keyword, a name run() uses, "
                    "or the PIPEKIT_ prefix); rename it",
                    where,
                    key=True,
                )
                continue
            param = Param(name, kind=spec["type"])
            if "default" in spec:
                param = Param(name, spec["default"], spec["type"])
                try:
                    bind_params(self.name, {name: param}, {name: spec["default"]}, self.tz)
                except ParamError as exc:
                    reason = str(exc).split(": ", 1)[-1]  # without the "DAG 'x': " prefix
                    self.problem(f"{spec['default']!r} does not fit: {reason}", [*where, "default"])
                    continue
            self.params[name] = param

    def read_tz(self) -> None:
        """Check the timezone first: parameters' defaults and dates are read in it."""
        tz = _text(self.data.get("tz"))
        if tz is not None:
            import zoneinfo

            try:
                zoneinfo.ZoneInfo(tz)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                self.problem(
                    f"{tz!r} is not a known IANA timezone; use a name such as UTC or "
                    "America/New_York",
                    ["tz"],
                )
                tz = None
        self.tz = tz

    def read_when(self) -> dict[str, Any]:
        """Check start and schedule with the engine's own parsers."""
        from pipekit.schedule import _anchor, parse_schedule

        tz = self.tz
        start = _text(self.data.get("start"))
        if start is not None:
            try:
                _anchor(start, tz or "UTC", self.name)
            except DefinitionError:
                self.problem(f"{start!r} is not a date; write it as YYYY-MM-DD", ["start"])
                start = None
        schedule = _text(self.data.get("schedule"))
        if schedule is not None:
            try:
                parse_schedule(schedule, tz=tz or "UTC", start=start, dag_name=self.name)
            except DefinitionError as exc:
                self.problem(str(exc).split(": ", 1)[-1], ["schedule"])
                schedule = None
            else:
                dated = [n for n, p in self.params.items() if p.kind in ("date", "datetime")]
                if "ds" not in self.params and len(dated) != 1:
                    self.problem(
                        "a scheduled DAG needs a parameter for the logical date; declare "
                        "params: {ds: {type: date}} (or exactly one date or datetime param)",
                        ["schedule"],
                    )
        options: dict[str, Any] = {"tz": tz, "schedule": schedule, "start": start}
        if isinstance(self.data.get("catchup"), bool):
            options["catchup"] = self.data["catchup"]
        runs = self.data.get("max_active_runs")
        if isinstance(runs, int) and not isinstance(runs, bool) and runs >= 1:
            options["max_active_runs"] = runs
        return options

    def read_connections(self) -> None:
        declared = self.data.get("connections")
        if not isinstance(declared, dict):
            return
        for name, url in declared.items():
            if not isinstance(name, str) or not isinstance(url, str):
                continue
            conn = Connection(name, url, self.folder)
            trouble = conn.problem()
            if trouble:
                self.problem(trouble, ["connections", name])
            self.connections[name] = conn

    # -- tasks ----------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return _text(self.data.get("name")) or self.source.path.stem

    def read_tasks(self) -> list[Blueprint]:
        from pipekit.declarative.operators.sh import KILL_GRACE
        from pipekit.task import task

        tasks = self.data.get("tasks")
        defaults = self.data.get("defaults")
        defaults = defaults if isinstance(defaults, dict) else {}
        if not isinstance(tasks, dict):
            return []
        out: list[Blueprint] = []
        for name, spec in tasks.items():
            if not isinstance(name, str) or not isinstance(spec, dict):
                continue  # a name YAML read as a number (say) was reported by the schema
            ids = self.expansions(name, spec)
            self.expanded[name] = [tid for tid, _ in ids]
            loops = spec.get("for_each") if isinstance(spec.get("for_each"), dict) else {}
            known = set(self.params) | {v for v in loops or {} if isinstance(v, str)}
            made = self.operator(name, spec, defaults, known)
            options = self.options(name, spec, defaults, known)
            if made is None or options is None or not ids:
                continue
            kind, factory = made
            for tid, consts in ids:
                fn, params, constants = factory(consts)
                opts = dict(options)
                if "output" in opts:
                    try:
                        bound = _bind_output(opts["output"], consts)
                    except ValueError as exc:
                        self.problem(str(exc), ["tasks", name, "output"])
                        break
                    opts["output"] = in_folder(bound, self.folder)
                if kind == "sh" and "timeout" in opts:
                    # The command's process group is killed at `timeout` by the operator;
                    # the run loop's own limit only backs that up (see operators.sh).
                    opts["timeout"] = opts["timeout"] + KILL_GRACE + 1.0
                try:
                    task(name=tid, **opts)(fn)
                except DefinitionError as exc:
                    bad = next((k for k in opts if f"{k}=" in str(exc)), None)
                    self.problem(str(exc), ["tasks", name, *([bad] if bad else [])], key=True)
                    break
                out.append(Blueprint(tid, name, kind, fn, opts, params, constants))
        self.link(tasks, out)
        return out

    def link(self, tasks: dict[str, Any], blueprints: list[Blueprint]) -> None:
        """Resolve ``depends_on`` to task ids."""
        by_written: dict[str, list[Blueprint]] = {}
        for bp in blueprints:
            by_written.setdefault(bp.written, []).append(bp)
        every = {tid for ids in self.expanded.values() for tid in ids}
        for name, spec in tasks.items():
            deps = spec.get("depends_on") if isinstance(spec, dict) else None
            if not isinstance(name, str):
                continue
            if isinstance(deps, str):
                deps = [deps]
            if not isinstance(deps, list):
                continue
            ups: list[str] = []
            for i, dep in enumerate(deps):
                if not isinstance(dep, str):
                    continue  # the schema reported it
                where: list[str | int] = ["tasks", name, "depends_on"]
                where += [i] if isinstance(spec["depends_on"], list) else []
                if dep in self.expanded:
                    ups.extend(self.expanded[dep])
                elif dep in every:
                    ups.append(dep)
                else:
                    close = difflib.get_close_matches(str(dep), list(self.expanded), n=1)
                    hint = f"did you mean {close[0]!r}? " if close else ""
                    self.problem(
                        f"{dep!r} is not a task of this file; {hint}tasks: "
                        f"{', '.join(self.expanded)}",
                        where,
                    )
            for tid in self.expanded.get(name, []):
                self.upstream[tid] = list(dict.fromkeys(ups))
            for bp in by_written.get(name, []):
                bp.upstream = self.upstream[bp.id]

    def check_cycles(self) -> None:
        """A cycle is one problem, a :class:`CycleError` located at its first task."""
        from pipekit.dag import _topological

        written = {tid: name for name, ids in self.expanded.items() for tid in ids}
        upstream = {tid: self.upstream.get(tid, []) for tid in written}
        try:
            _topological(self.name, upstream)
        except CycleError as exc:
            first = written[exc.cycle[0]]
            line = self.source.line(["tasks", first, "depends_on"])
            where = locate(self.source.path, line, first, "depends_on")
            exc.args = (f"{where}: {exc}",)
            self.problems.append(exc)

    def run(self) -> Plan | None:
        """Check everything; return the plan when there was no problem."""
        options: dict[str, Any] = {}
        blueprints: list[Blueprint] = []
        if self.data:
            self.read_tz()
            self.read_params()
            options = self.read_when()
            self.read_connections()
            for key in NOTIFY_KEYS:
                options[key] = self.notifiers([key])
            blueprints = self.read_tasks()
            self.check_cycles()
        if self.problems:
            return None
        return Plan(
            self.source,
            self.name,
            _text(self.data.get("description")),
            self.params,
            options,
            blueprints,
        )


def compile_source(source: Source, problems: list[PipekitError]) -> Plan | None:
    """Check ``source`` beyond its schema, appending to ``problems``; the plan if none."""
    return _Compiler(source, problems).run()
