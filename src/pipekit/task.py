"""Tasks: decorated Python functions, and the references they return inside a DAG body.

``@task`` wraps a function in a :class:`Task`. Called outside a DAG body it is the
plain function, so it can be unit-tested as is. Called inside a ``@dag`` body it
adds a node to the DAG being defined and returns a :class:`TaskRef`; passing that
reference to another task call adds an edge and passes the value at run time.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Protocol, TypeVar, overload

from pipekit.callbacks import Callback, callbacks
from pipekit.errors import DefinitionError, PipekitError
from pipekit.retry import NO_RETRY, Retry

__all__ = ["Skip", "Task", "TaskRef", "task"]

P = ParamSpec("P")
R = TypeVar("R")


class Skip(PipekitError):
    """Raise inside a task to mark it ``skipped``; its downstream tasks are skipped too.

    Example:
        >>> @task
        ... def fetch(ds):
        ...     if is_holiday(ds):
        ...         raise pipekit.Skip(f"{ds} is a holiday")
    """


class _Builder(Protocol):
    """What a DAG under definition offers to task calls (implemented in pipekit.dag)."""

    def add_call(
        self, task: Task[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> TaskRef:
        """Add a task call as a node and return its reference."""
        ...

    def add_edges(self, upstream: Sequence[TaskRef], downstream: Sequence[TaskRef]) -> None:
        """Add ordering edges from every upstream to every downstream."""
        ...


_building: ContextVar[_Builder | None] = ContextVar("pipekit_building", default=None)


class Task(Generic[P, R]):
    """A Python function with a task's options (name, retry policy, timeout).

    Create one with :func:`task`. Attributes: ``fn`` (the function), ``name``,
    ``retry`` (a :class:`pipekit.Retry`), ``timeout`` (seconds per attempt or None),
    ``persist`` (keep the result for re-runs), ``output`` (the path template of the
    file it produces, or None).
    """

    fn: Callable[P, R]
    name: str
    retry: Retry
    timeout: float | None
    persist: bool
    output: str | None
    on_failure: tuple[Callback, ...]
    on_success: tuple[Callback, ...]
    on_retry: tuple[Callback, ...]

    def __init__(
        self,
        fn: Callable[P, R],
        *,
        name: str | None,
        retry: Retry,
        timeout: float | None,
        persist: bool = True,
        output: str | None = None,
        on_failure: Any = None,
        on_success: Any = None,
        on_retry: Any = None,
    ) -> None:
        if not callable(fn):
            raise DefinitionError(f"@task needs a function, got {fn!r}")
        self.fn = fn
        self.name = name or _default_name(fn)
        self.retry = retry
        self.timeout = timeout
        self.persist = persist
        self.output = output
        self.on_failure = callbacks(on_failure, "on_failure")
        self.on_success = callbacks(on_success, "on_success")
        self.on_retry = callbacks(on_retry, "on_retry")
        functools.update_wrapper(self, fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function, or inside a DAG body, add this call to the DAG."""
        builder = _building.get()
        if builder is None:
            return self.fn(*args, **kwargs)
        return builder.add_call(self, args, kwargs)  # type: ignore[return-value]

    def __repr__(self) -> str:
        """Show the task's name and policy."""
        return f"<Task {self.name} retries={self.retry.retries} timeout={self.timeout}>"


def _default_name(fn: Callable[..., Any]) -> str:
    """The function's ``__name__`` (a ``functools.partial``'s: its function's).

    Raises:
        DefinitionError: ``fn`` has no name (a callable object): give ``name=``.
    """
    inner: Any = fn
    while isinstance(inner, functools.partial):
        inner = inner.func
    found = getattr(inner, "__name__", None)
    if isinstance(found, str) and found:
        return found
    raise DefinitionError(
        f"@task cannot name {fn!r}, which has no __name__; give the task a name: "
        "task(name='load')(...)"
    )


class TaskRef:
    """The value of a task call inside a DAG body: a promise of its result at run time.

    Pass it to another task call to depend on it; use ``>>`` to order tasks without
    passing data: ``a >> b``, ``[a, b] >> c``, ``a >> [b, c]`` (each returns its right
    side, so ``a >> b >> c`` chains).
    """

    __slots__ = ("_builder", "task_id")

    def __init__(self, builder: _Builder, task_id: str) -> None:
        self._builder = builder
        self.task_id = task_id

    def __rshift__(self, other: TaskRef | Sequence[TaskRef]) -> Any:
        """``self >> other``: other runs after self."""
        self._builder.add_edges([self], _refs(other, "right"))
        return other

    def __rrshift__(self, other: Sequence[TaskRef]) -> TaskRef:
        """``[a, b] >> self``: self runs after each of them."""
        self._builder.add_edges(_refs(other, "left"), [self])
        return self

    def __lshift__(self, other: TaskRef | Sequence[TaskRef]) -> Any:
        """``self << other``: self runs after other."""
        self._builder.add_edges(_refs(other, "right"), [self])
        return other

    def __rlshift__(self, other: Sequence[TaskRef]) -> TaskRef:
        """``[a, b] << self``: each of them runs after self."""
        self._builder.add_edges([self], _refs(other, "left"))
        return self

    def _misuse(self, what: str) -> DefinitionError:
        return DefinitionError(
            f"the result of task {self.task_id!r} was {what} in the DAG body, but while a DAG "
            "is defined a task call returns a reference, not its value; pass it whole to "
            "another task and use the value inside that task"
        )

    def __bool__(self) -> bool:
        """Refuse: the value is not known while the DAG is defined."""
        raise self._misuse("tested for truth")

    def __iter__(self) -> Iterator[Any]:
        """Refuse: the value is not known while the DAG is defined."""
        raise self._misuse("unpacked or iterated")

    def __getattr__(self, name: str) -> Any:
        """Refuse attribute access with an explanation."""
        if name.startswith("__"):
            raise AttributeError(name)
        raise self._misuse(f"asked for .{name}")

    def __repr__(self) -> str:
        """Name the referenced task."""
        return f"<TaskRef {self.task_id}>"


def _refs(value: TaskRef | Sequence[TaskRef], side: str) -> list[TaskRef]:
    if isinstance(value, TaskRef):
        items: list[Any] = [value]
    elif isinstance(value, list | tuple | set | frozenset):
        items = list(value)
    else:
        items = [value]
    for item in items:
        if not isinstance(item, TaskRef):
            raise DefinitionError(
                f">> and << order task calls; the {side} side holds {item!r}, which is not "
                "the result of a task call in this DAG body"
            )
    return items


def _check_timeout(timeout: float | None) -> float | None:
    if timeout is None:
        return None
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise DefinitionError(f"timeout={timeout!r} must be a positive number of seconds, or None")
    return float(timeout)


if TYPE_CHECKING:
    ExcTypes = type[BaseException] | tuple[type[BaseException], ...]


@overload
def task(fn: Callable[P, R], /) -> Task[P, R]: ...


@overload
def task(
    *,
    name: str | None = None,
    retries: int | None = None,
    retry_delay: float = 0.0,
    retry_backoff: float = 1.0,
    retry_max_delay: float | None = None,
    retry_jitter: float = 0.0,
    retry_on: ExcTypes = Exception,
    retry: Retry | None = None,
    timeout: float | None = None,
    persist: bool = True,
    output: str | None = None,
    on_failure: Callback | list[Callback] | None = None,
    on_success: Callback | list[Callback] | None = None,
    on_retry: Callback | list[Callback] | None = None,
) -> Callable[[Callable[P, R]], Task[P, R]]: ...


def task(
    fn: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    retries: int | None = None,
    retry_delay: float = 0.0,
    retry_backoff: float = 1.0,
    retry_max_delay: float | None = None,
    retry_jitter: float = 0.0,
    retry_on: ExcTypes = Exception,
    retry: Retry | None = None,
    timeout: float | None = None,
    persist: bool = True,
    output: str | None = None,
    on_failure: Callback | list[Callback] | None = None,
    on_success: Callback | list[Callback] | None = None,
    on_retry: Callback | list[Callback] | None = None,
) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
    """Make a function a task; use as ``@task`` or ``@task(...)``.

    Args:
        fn: the function (when used bare as ``@task``).
        name: the task's id in DAGs (default: the function's name).
        retries: retries after the first attempt (default 0: up to retries+1 attempts).
        retry_delay: seconds before the first retry.
        retry_backoff: delay multiplier per retry (1 fixed, 2 exponential).
        retry_max_delay: cap on any single delay.
        retry_jitter: up to this many random seconds added to each delay.
        retry_on: exception type(s) that may be retried; any other error fails at once.
        retry: a whole :class:`pipekit.Retry` policy instead of the ``retry*`` options.
        timeout: seconds per attempt; a longer attempt fails with
            :class:`pipekit.TaskTimeout` and the run moves on at once.
        persist: keep the task's result beside the history so that a re-run need not
            execute it again (False: a re-run executes it again when a downstream task
            needs its value; use it for results that are large or cannot be pickled).
        output: the path of the file the task produces, as a template of run
            parameters (``"warehouse/sales/{ds}.parquet"``); when it exists the task is
            skipped and its downstream tasks get the path. See :mod:`pipekit.outputs`.
        on_failure: callable(s) called with a :class:`pipekit.Event` when the task fails
            for good (after its retries).
        on_success: callable(s) called when the task succeeds.
        on_retry: callable(s) called when an attempt failed and will be retried.

    Example:
        >>> @task(retries=2, retry_delay=0.5)
        ... def transform(rows):
        ...     return [r * 10 for r in rows]
        >>> transform([1, 2])  # outside a DAG body: the plain function
        [10, 20]
    """
    custom = (
        retries is not None,
        retry_delay != 0.0,
        retry_backoff != 1.0,
        retry_max_delay is not None,
        retry_jitter != 0.0,
        retry_on is not Exception,
    )
    if retry is not None:
        if any(custom):
            raise DefinitionError(
                "give either retry=Retry(...) or the retries/retry_* options, not both"
            )
        if not isinstance(retry, Retry):
            raise DefinitionError(f"retry={retry!r} must be a pipekit.Retry(...)")
        policy = retry
    elif any(custom):
        n = 0 if retries is None else retries
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise DefinitionError(f"retries={retries!r} must be an int >= 0")
        on = retry_on if isinstance(retry_on, tuple) else (retry_on,)
        policy = Retry(
            attempts=n + 1,
            delay=retry_delay,
            backoff=retry_backoff,
            max_delay=retry_max_delay,
            jitter=retry_jitter,
            on=on,
        )
    else:
        policy = NO_RETRY
    limit = _check_timeout(timeout)
    for option, value in (
        ("on_failure", on_failure),
        ("on_success", on_success),
        ("on_retry", on_retry),
    ):
        callbacks(value, option)
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise DefinitionError(f"name={name!r} must be a non-empty string")
    if not isinstance(persist, bool):
        raise DefinitionError(f"persist={persist!r} must be True or False")
    if output is not None:
        if not isinstance(output, str) or not output.strip():
            raise DefinitionError(
                f"output={output!r} must be a path template such as 'out/{{ds}}.csv'"
            )
        from pipekit.outputs import output_fields

        output_fields(output)  # a malformed template fails here, at definition

    def wrap(f: Callable[P, R]) -> Task[P, R]:
        if isinstance(f, Task):
            raise DefinitionError(f"{f.name!r} is already a task; apply @task once")
        return Task(
            f,
            name=name,
            retry=policy,
            timeout=limit,
            persist=persist,
            output=output,
            on_failure=on_failure,
            on_success=on_success,
            on_retry=on_retry,
        )

    if fn is not None:
        return wrap(fn)
    return wrap
