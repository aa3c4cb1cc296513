"""DAGs: a function whose body wires task calls together, run with fixed parameters.

``@dag`` runs the decorated function's body once, at definition, with placeholder
parameters. Each task call in it becomes a node; each task reference passed to
another call, and each ``>>``, becomes an edge. The result is a :class:`DAG`, which
knows its tasks, their order and its parameters, and runs with :meth:`DAG.run`.
"""

from __future__ import annotations

import inspect
import itertools
import os
import re
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, overload

from pipekit.errors import CycleError, DefinitionError
from pipekit.params import Param, signature_params
from pipekit.task import Task, TaskRef, _building

if TYPE_CHECKING:
    import networkx

    from pipekit.clock import Clock
    from pipekit.executors.base import ExecutorSpec
    from pipekit.run import Run
    from pipekit.stores.base import Store

__all__ = ["DAG", "Node", "ParamRef", "dag"]

RESERVED = frozenset({"executor", "max_workers", "store", "raise_on_failure", "clock"})

_registry: weakref.WeakValueDictionary[str, DAG] = weakref.WeakValueDictionary()
"""DAGs defined in this process by name (the latest definition wins), for re-runs."""


def registered(name: str) -> DAG | None:
    """Return the DAG of this name defined most recently in this process, if any."""
    return _registry.get(name)


class ParamRef:
    """A run parameter inside a DAG body: a placeholder for its value at run time."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def _misuse(self, what: str) -> DefinitionError:
        return DefinitionError(
            f"run parameter {self.name!r} was {what} in the DAG body, which runs once when the "
            "DAG is defined, before any value is known; pass the parameter to a task and use "
            "its value inside the task"
        )

    def __bool__(self) -> bool:
        """Refuse: the value is not known while the DAG is defined."""
        raise self._misuse("tested for truth")

    def __str__(self) -> str:
        """Refuse: the value is not known while the DAG is defined."""
        raise self._misuse("formatted as a string")

    def __format__(self, spec: str) -> str:
        """Refuse: the value is not known while the DAG is defined."""
        raise self._misuse("formatted as a string")

    def __getattr__(self, name: str) -> Any:
        """Refuse attribute access with an explanation."""
        if name.startswith("__"):
            raise AttributeError(name)
        raise self._misuse(f"asked for .{name}")

    def __repr__(self) -> str:
        """Name the parameter."""
        return f"<ParamRef {self.name}>"


@dataclass(frozen=True, slots=True)
class Node:
    """One task call in a DAG.

    Attributes:
        task_id: unique id in the DAG (the task's name; ``name__1``, ... for repeats).
        task: the :class:`pipekit.Task` called.
        args: positional arguments, with :class:`TaskRef` and :class:`ParamRef` inside.
        kwargs: keyword arguments, likewise.
        upstream: ids of the tasks it waits for (data and ordering), in order added.
        dynamic: True when ``args``/``kwargs`` hold references to resolve at run time.
        inputs: ids of the tasks whose values it receives (a subset of ``upstream``).
    """

    task_id: str
    task: Task[Any, Any]
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    upstream: tuple[str, ...]
    dynamic: bool
    inputs: tuple[str, ...] = ()


def _scan(value: Any, found: list[str]) -> bool:
    """Collect task ids referenced in ``value``; return True if it holds any reference."""
    if isinstance(value, TaskRef):
        found.append(value.task_id)
        return True
    if isinstance(value, ParamRef):
        return True
    if isinstance(value, list | tuple | set | frozenset):
        hit = False
        for v in value:
            hit = _scan(v, found) or hit
        return hit
    if isinstance(value, dict):
        hit = False
        for v in value.values():
            hit = _scan(v, found) or hit
        return hit
    return False


class _DagBuilder:
    """Collects nodes and edges while a DAG body runs."""

    def __init__(self, dag_name: str) -> None:
        self.dag_name = dag_name
        self.calls: dict[str, tuple[Task[Any, Any], tuple[Any, ...], dict[str, Any], bool]] = {}
        self.inputs: dict[str, tuple[str, ...]] = {}
        self.upstream: dict[str, list[str]] = {}
        self.counts: dict[str, int] = {}

    def _new_id(self, base: str) -> str:
        if base not in self.calls:
            return base
        n = self.counts.get(base, 0)
        while True:
            n += 1
            candidate = f"{base}__{n}"
            if candidate not in self.calls:
                self.counts[base] = n
                return candidate

    def add_call(
        self, task: Task[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> TaskRef:
        found: list[str] = []
        dynamic = _scan(args, found) | _scan(kwargs, found)
        for ref_id in found:
            if ref_id not in self.calls:
                raise DefinitionError(
                    f"task {task.name!r} in DAG {self.dag_name!r} was passed a reference to "
                    f"{ref_id!r}, which belongs to another DAG; call that task in this DAG's body"
                )
        task_id = self._new_id(task.name)
        self.calls[task_id] = (task, args, kwargs, dynamic)
        self.upstream[task_id] = list(dict.fromkeys(found))
        self.inputs[task_id] = tuple(self.upstream[task_id])
        return TaskRef(self, task_id)

    def add_edges(self, upstream: Sequence[TaskRef], downstream: Sequence[TaskRef]) -> None:
        for d in downstream:
            ups = self.upstream[d.task_id]
            for u in upstream:
                if u._builder is not self or d._builder is not self:
                    raise DefinitionError(
                        f"{u.task_id!r} >> {d.task_id!r} links tasks of different DAGs; "
                        "order tasks within one DAG body"
                    )
                if u.task_id == d.task_id:
                    raise CycleError(self.dag_name, [u.task_id, u.task_id])
                if u.task_id not in ups:
                    ups.append(u.task_id)


_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
"""What a DAG name may be: as in a YAML DAG file (letters, digits, _, . and -)."""


def _check_name(name: object) -> str:
    """Return ``name`` if it is a valid DAG name, else raise DefinitionError naming it."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise DefinitionError(
            f"DAG name={name!r} is not a name; use letters, digits, _, . and -, starting "
            "with a letter, digit or _ (such as 'daily_sales'), or leave it out to use the "
            "function's name"
        )
    return name


def _topological(dag_name: str, upstream: Mapping[str, Sequence[str]]) -> tuple[str, ...]:
    """Kahn's algorithm, stable in definition order; raise CycleError naming a cycle."""
    downstream: dict[str, list[str]] = {t: [] for t in upstream}
    waiting = {t: len(ups) for t, ups in upstream.items()}
    for t, ups in upstream.items():
        for u in ups:
            downstream[u].append(t)
    ready = [t for t, n in waiting.items() if n == 0]
    order: list[str] = []
    i = 0
    while i < len(ready):
        t = ready[i]
        i += 1
        order.append(t)
        for d in downstream[t]:
            waiting[d] -= 1
            if waiting[d] == 0:
                ready.append(d)
    if len(order) == len(upstream):
        return tuple(order)
    raise CycleError(dag_name, _find_cycle({t: u for t, u in upstream.items() if waiting[t]}))


def _find_cycle(upstream: Mapping[str, Sequence[str]]) -> list[str]:
    """Return one cycle among the tasks left over by Kahn's algorithm, in dependency order."""
    start = next(iter(upstream))
    path: list[str] = []
    seen: dict[str, int] = {}
    node = start
    while node not in seen:  # every leftover task has a leftover upstream: walk until repeat
        seen[node] = len(path)
        path.append(node)
        node = next(u for u in upstream[node] if u in upstream)
    loop = [*path[seen[node] :], node]
    return list(reversed(loop))


class DAG:
    """A workflow: tasks, their dependencies, and run parameters.

    Made by :func:`dag`. Attributes: ``name``, ``description``, ``tasks`` (task id to
    :class:`Node`, in topological order), ``params`` (name to :class:`pipekit.Param`),
    ``order`` (task ids, topological), ``tz``, ``module`` and ``file`` (where it was
    defined, so that a later process can import it again), ``graph``, and the scheduling
    options ``schedule`` (a :class:`pipekit.schedule.Schedule` or None), ``start``,
    ``catchup``, ``max_active_runs``, ``logical_param``, and the ``on_failure``,
    ``on_success`` and ``on_retry`` callbacks.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        tz: str | None = None,
        schedule: Any = None,
        start: Any = None,
        catchup: bool = True,
        max_active_runs: int = 1,
        on_failure: Any = None,
        on_success: Any = None,
        on_retry: Any = None,
    ) -> None:
        from pipekit.callbacks import callbacks

        self.fn = fn
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise DefinitionError(f"DAG name={name!r} must be a non-empty string")
        self.name = name or fn.__name__
        self.description = description if description is not None else inspect.getdoc(fn)
        self.tz = _check_tz(self.name, tz)
        self.on_failure = callbacks(on_failure, "on_failure")
        self.on_success = callbacks(on_success, "on_success")
        self.on_retry = callbacks(on_retry, "on_retry")
        if not isinstance(catchup, bool):
            raise DefinitionError(f"DAG {self.name!r}: catchup={catchup!r} must be True or False")
        self.catchup = catchup
        if (
            isinstance(max_active_runs, bool)
            or not isinstance(max_active_runs, int)
            or max_active_runs < 1
        ):
            raise DefinitionError(
                f"DAG {self.name!r}: max_active_runs={max_active_runs!r} must be an int >= 1"
            )
        self.max_active_runs = max_active_runs
        self.module: str = fn.__module__
        self.file: str | None = _source_file(fn)
        self.params: dict[str, Param] = signature_params(fn, self.name, RESERVED)
        builder = _DagBuilder(self.name)
        token = _building.set(builder)
        try:
            fn(**{p: ParamRef(p) for p in self.params})
        finally:
            _building.reset(token)
        self.order = _topological(self.name, builder.upstream)
        self.tasks: dict[str, Node] = {}
        for tid in self.order:
            t, args, kwargs, dynamic = builder.calls[tid]
            self.tasks[tid] = Node(
                tid, t, args, kwargs, tuple(builder.upstream[tid]), dynamic, builder.inputs[tid]
            )
        downstream: dict[str, list[str]] = {t: [] for t in self.order}
        for tid in self.order:
            for u in self.tasks[tid].upstream:
                downstream[u].append(tid)
        self.downstream: dict[str, tuple[str, ...]] = {t: tuple(d) for t, d in downstream.items()}
        consumers: dict[str, list[str]] = {t: [] for t in self.order}
        for tid in self.order:
            for u in self.tasks[tid].inputs:
                consumers[u].append(tid)
        self.consumers: dict[str, tuple[str, ...]] = {t: tuple(c) for t, c in consumers.items()}
        """Task id to the tasks that receive its value (its result is kept for re-runs)."""
        self._graph: networkx.DiGraph | None = None
        self._check_outputs()
        self._set_schedule(schedule, start)
        _registry[self.name] = self

    def _set_schedule(self, schedule: Any, start: Any) -> None:
        from pipekit.schedule import _anchor, parse_schedule

        tz = self.tz or "UTC"
        self.start = _anchor(start, tz, self.name)
        self.schedule = parse_schedule(schedule, tz=tz, start=start, dag_name=self.name)
        self.logical_param: str | None = None
        if self.schedule is None:
            return
        if "ds" in self.params:
            self.logical_param = "ds"
        else:
            dated = [n for n, p in self.params.items() if p.kind in ("date", "datetime")]
            if len(dated) != 1:
                raise DefinitionError(
                    f"DAG {self.name!r} has a schedule but no parameter to receive the logical "
                    "date; add a 'ds' parameter (or exactly one date-annotated parameter)"
                )
            self.logical_param = dated[0]
        if self.params[self.logical_param].kind == "date":
            points = [self.schedule.next_after(self.start or "2024-01-01")]
            for _ in range(48):
                points.append(self.schedule.next_after(points[-1]))
            shortest = min((b - a).total_seconds() for a, b in itertools.pairwise(points))
            if shortest < 23 * 3600:
                raise DefinitionError(
                    f"DAG {self.name!r}: schedule {self.schedule.text!r} runs more than once a "
                    f"day but parameter {self.logical_param!r} is a date; annotate it as a "
                    "datetime"
                )

    def logical_dates(self, start: Any, end: Any) -> list[Any]:
        """The logical dates of the DAG's schedule that fall in [start, end].

        Each is what the logical-date parameter receives: a pendulum Date when it is
        annotated as a date (then every point on the local days from start to end
        counts, whatever its time of day), else a pendulum DateTime in the DAG's
        timezone.

        Raises:
            DefinitionError: the DAG has no schedule.
        """
        if self.schedule is None:
            raise DefinitionError(
                f"DAG {self.name!r} has no schedule; give @dag(schedule=...) or pass step= "
                "to backfill"
            )
        if self.logical_param and self.params[self.logical_param].kind == "date":
            first, last = self.schedule.localize(start), self.schedule.localize(end)
            return [p.date() for p in self.schedule.points_on_days(first.date(), last.date())]
        return list(self.schedule.logical_dates(start, end))

    def _check_outputs(self) -> None:
        from pipekit.outputs import output_fields

        for tid, node in self.tasks.items():
            if node.task.output is None:
                continue
            for field in output_fields(node.task.output):
                if field not in self.params:
                    raise DefinitionError(
                        f"task {tid!r} in DAG {self.name!r} has output={node.task.output!r}, "
                        f"whose field {{{field}}} is not a run parameter; use one of: "
                        f"{', '.join(self.params) or 'none (the DAG has no parameters)'}"
                    )

    @property
    def graph(self) -> networkx.DiGraph:
        """The dependencies as a ``networkx.DiGraph`` over task ids, edges upstream to downstream.

        Built on first access (networkx is imported only then) and cached; node
        attribute ``task`` holds the :class:`pipekit.Task`.
        """
        if self._graph is None:
            import networkx as nx

            g = nx.DiGraph(name=self.name)
            for tid, node in self.tasks.items():
                g.add_node(tid, task=node.task)
            for tid, node in self.tasks.items():
                g.add_edges_from((u, tid) for u in node.upstream)
            self._graph = g
        return self._graph

    def run(
        self,
        *,
        executor: ExecutorSpec = "threads",
        max_workers: int | None = None,
        store: Store | str | None = None,
        raise_on_failure: bool = True,
        clock: Clock | None = None,
        **params: Any,
    ) -> Run:
        """Run every task once its upstream tasks have succeeded, and return the :class:`Run`.

        Args:
            executor: "sequential", "threads" (default), "processes", "dask", an executor
                object, or a factory making one for this run (a class or a
                zero-argument callable).
            max_workers: how many tasks may run at once (default: the executor's).
            store: the run-history store, or a URL naming one (``"sqlite:///h.db"``,
                ``"postgresql://..."``, ``"memory://"``); default: ``pipekit.configure``'s,
                else ``$PIPEKIT_STORE``, else SQLite at ``$PIPEKIT_HOME/history.db``.
            raise_on_failure: raise :class:`pipekit.RunFailed` when a task fails.
            clock: time source (tests pass :class:`pipekit.testing.FakeClock`).
            **params: the run parameters.

        Raises:
            ParamError: a parameter is missing, unknown or malformed (before anything runs).
            RunFailed: a task failed and ``raise_on_failure`` is true.
        """
        from pipekit.runner import execute

        return execute(
            self,
            params,
            executor=executor,
            max_workers=max_workers,
            store=store,
            raise_on_failure=raise_on_failure,
            clock=clock,
        )

    def __repr__(self) -> str:
        """Name, task count and parameters."""
        return f"<DAG {self.name} tasks={len(self.tasks)} params={list(self.params)}>"


def _check_tz(dag_name: str, tz: str | None) -> str | None:
    if tz is None:
        return None
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise DefinitionError(
            f"DAG {dag_name!r}: tz={tz!r} is not a known IANA timezone; "
            "use a name such as 'UTC' or 'Europe/Berlin'"
        ) from exc
    return tz


def _source_file(fn: Callable[..., Any]) -> str | None:
    try:
        path = inspect.getsourcefile(fn) or inspect.getfile(fn)
    except TypeError:
        return None
    if path.startswith("<"):
        return None
    return os.path.abspath(path)


@overload
def dag(fn: Callable[..., Any], /) -> DAG: ...


@overload
def dag(
    *,
    name: str | None = None,
    description: str | None = None,
    tz: str | None = None,
    schedule: Any = None,
    start: Any = None,
    catchup: bool = True,
    max_active_runs: int = 1,
    on_failure: Any = None,
    on_success: Any = None,
    on_retry: Any = None,
) -> Callable[[Callable[..., Any]], DAG]: ...


def dag(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    tz: str | None = None,
    schedule: Any = None,
    start: Any = None,
    catchup: bool = True,
    max_active_runs: int = 1,
    on_failure: Any = None,
    on_success: Any = None,
    on_retry: Any = None,
) -> DAG | Callable[[Callable[..., Any]], DAG]:
    """Make a DAG from a function whose body calls tasks; use as ``@dag`` or ``@dag(...)``.

    The body runs once, now, with placeholder parameters; the function's parameters
    are the DAG's run parameters (those without defaults are required).

    Args:
        fn: the function (when used bare as ``@dag``).
        name: the DAG's name (default: the function's name): letters, digits, ``_``,
            ``.`` and ``-``, starting with a letter, digit or ``_``, as in a YAML DAG file.
        description: a description (default: the function's docstring).
        tz: the IANA timezone of the schedule, in which date strings without a zone are
            read (default UTC).
        schedule: a 5-field cron string, a preset (``@hourly``, ``@daily``, ``@weekly``,
            ``@monthly``, ``@yearly``), a timedelta / pendulum Duration, or None (manual).
        start: the first logical date the scheduler runs (and a duration's anchor).
        catchup: run every missed interval since ``start`` (True) or only the latest.
        max_active_runs: how many runs of the DAG the scheduler keeps going at once.
        on_failure: callable(s) called with a :class:`pipekit.Event` when a run fails.
        on_success: callable(s) called when a run succeeds.
        on_retry: callable(s) called when any of its tasks is retried.

    Example:
        >>> @dag
        ... def etl(ds, region="eu"):
        ...     load(transform(extract(ds)), ds)
        >>> run = etl.run(ds="2024-01-05")

    Raises:
        DefinitionError: an option is invalid (the message names it).
    """
    if name is not None:
        _check_name(name)

    def wrap(f: Callable[..., Any]) -> DAG:
        if isinstance(f, DAG):
            raise DefinitionError(f"{f.name!r} is already a DAG; apply @dag once")
        return DAG(
            f,
            name=name,
            description=description,
            tz=tz,
            schedule=schedule,
            start=start,
            catchup=catchup,
            max_active_runs=max_active_runs,
            on_failure=on_failure,
            on_success=on_success,
            on_retry=on_retry,
        )

    if fn is not None:
        return wrap(fn)
    return wrap
