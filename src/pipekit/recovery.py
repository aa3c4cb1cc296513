"""Recovery: re-run a recorded run identically, from this process or a new one.

Every run is recorded with its DAG's name and location and its parameters, so a failed
run can be executed again with exactly the same inputs. :func:`rerun` finds the DAG
again (defined in this process, or imported from the recorded module or file), works
out which tasks did not succeed, loads the saved results of the ones that did, and
runs the rest under the same run id. :func:`prune` removes old saved results.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipekit.errors import PipekitError
from pipekit.state import State

if TYPE_CHECKING:
    from pipekit.clock import Clock
    from pipekit.dag import DAG
    from pipekit.executors.base import ExecutorSpec
    from pipekit.results.base import ResultStore
    from pipekit.run import Run
    from pipekit.runner import Resume
    from pipekit.stores.base import Store

__all__ = ["load_dag", "plan_rerun", "prune", "rerun"]

_DONE = (State.SUCCESS, State.SKIPPED)


def rerun(
    run_id: str,
    *,
    tasks: Iterable[str] | None = None,
    downstream: bool = True,
    store: Store | str | None = None,
    executor: ExecutorSpec = "threads",
    max_workers: int | None = None,
    retries: bool = True,
    raise_on_failure: bool = True,
    clock: Clock | None = None,
) -> Run:
    """Execute a recorded run again, with its recorded parameters, under the same run id.

    The tasks that did not succeed (failed, upstream_failed, or never finished because
    the process died) run again; tasks that succeeded are not executed, their saved
    results feed the tasks that run. Attempt numbers keep counting and the attempt
    history is kept.

    Args:
        run_id: the run to execute again.
        tasks: also run these tasks even if they succeeded (Airflow's "clear").
        downstream: with ``tasks``, also run all their descendants.
        store: the history holding the run (default: the configured store).
        executor: "sequential", "threads", "processes", "dask", an executor object,
            or a factory making one for this run.
        max_workers: how many tasks may run at once.
        retries: False runs each task once, whatever its retry policy.
        raise_on_failure: raise :class:`pipekit.RunFailed` if the run fails again.
        clock: time source (tests pass a fake clock).

    Returns:
        The run as it ends now (its ``started_at`` is the original start).

    Raises:
        StoreError: no run has this id.
        PipekitError: the DAG cannot be found again, a task named in ``tasks`` does
            not exist, or a task that must run again no longer exists in the DAG.
        RunFailed: tasks failed again and ``raise_on_failure`` is true.

    Example:
        >>> run = etl.run(ds="2024-03-01", raise_on_failure=False)  # warehouse was down
        >>> run = pipekit.rerun(run.id)                               # same DAG, same params
    """
    from pipekit.config import resolve_store
    from pipekit.results import results_for
    from pipekit.runner import execute

    history = resolve_store(store)
    recorded = history.get_run(run_id)
    dag = load_dag(recorded)
    resume, forced = plan_rerun(dag, recorded, tasks, downstream, results_for(history))
    if not resume.todo and recorded.state == State.SUCCESS:
        return recorded
    return execute(
        dag,
        recorded.params,
        executor=executor,
        max_workers=max_workers,
        store=history,
        raise_on_failure=raise_on_failure,
        clock=clock,
        retries=retries,
        force=forced,
        resume=resume,
    )


def plan_rerun(
    dag: DAG,
    recorded: Run,
    tasks: Iterable[str] | None,
    downstream: bool,
    results: ResultStore,
) -> tuple[Resume, set[str]]:
    """Decide what a re-run executes; return the plan and the forced tasks."""
    from pipekit.results.base import MISSING
    from pipekit.runner import Resume

    forced: set[str] = set()
    if tasks is not None:
        names = [tasks] if isinstance(tasks, str) else list(tasks)
        unknown = [t for t in names if t not in dag.tasks]
        if unknown:
            raise PipekitError(
                f"rerun of {recorded.id}: DAG {dag.name!r} has no task {unknown[0]!r}; "
                f"its tasks are: {', '.join(dag.order)}"
            )
        forced = set(names)
        if downstream:
            for t in names:
                forced |= _descendants(dag, t)
    vanished = [t for t, r in recorded.tasks.items() if t not in dag.tasks and r.state not in _DONE]
    if vanished:
        raise PipekitError(
            f"rerun of {recorded.id}: task {vanished[0]!r} did not succeed in that run but is no "
            f"longer in DAG {dag.name!r} ({dag.file or dag.module}); restore the task, or "
            "start a new run with the DAG as it is now"
        )
    added = [t for t in dag.order if t not in recorded.tasks]
    todo = set(forced) | set(added)
    todo |= {t for t in dag.order if t in recorded.tasks and recorded.tasks[t].state not in _DONE}
    loaded: dict[str, Any] = {}
    stack = list(todo)
    while stack:
        for u in dag.tasks[stack.pop()].inputs:
            if u in todo or u in loaded:
                continue
            value = results.load(recorded.id, u) if dag.tasks[u].task.persist else MISSING
            if value is MISSING and recorded.tasks[u].state == State.SKIPPED:
                value = _skipped_output(dag, u, recorded)
            if value is MISSING:  # not saved (persist=False, or cleaned up): run it again
                todo.add(u)
                stack.append(u)
            else:
                loaded[u] = value
    return Resume(recorded, todo, loaded, added), forced


def _descendants(dag: DAG, tid: str) -> set[str]:
    seen: set[str] = set()
    stack = list(dag.downstream[tid])
    while stack:
        d = stack.pop()
        if d not in seen:
            seen.add(d)
            stack.extend(dag.downstream[d])
    return seen


def _skipped_output(dag: DAG, tid: str, recorded: Run) -> Any:
    """The value a task skipped because its output existed hands downstream: the path."""
    from pipekit.outputs import render_output
    from pipekit.params import bind_params
    from pipekit.results.base import MISSING

    template = dag.tasks[tid].task.output
    if template is None:
        return MISSING
    return render_output(template, bind_params(dag.name, dag.params, recorded.params, dag.tz))


def load_dag(run: Run) -> DAG:
    """Find the DAG of a recorded run: defined in this process, or imported again.

    Looks for a DAG of the run's name defined in this process (a notebook, a script
    that defines and re-runs), then imports the recorded module (adding its root to
    ``sys.path`` when the module was imported from a project directory), then loads the
    recorded file as a module without running its ``if __name__ == "__main__"`` block.

    Raises:
        PipekitError: the DAG cannot be found; the message names where it looked.
    """
    from pipekit.dag import registered

    found = registered(run.dag)
    if found is not None:
        return found
    tried: list[str] = []
    if run.module and run.module != "__main__" and not run.module.startswith("pipekit_dags."):
        tried.append(f"module {run.module!r}")
        if _import_module(run.module, run.file):
            found = registered(run.dag)
            if found is not None:
                return found
    if run.file:
        tried.append(f"file {run.file!r}")
        if Path(run.file).is_file():
            from pipekit.loader import load_file

            load_file(run.file)
            found = registered(run.dag)
            if found is not None:
                return found
    where = " and ".join(tried) or "no recorded location"
    raise PipekitError(
        f"cannot find DAG {run.dag!r} of run {run.id}: looked in {where}; define or import "
        f"the DAG in this process first, or run from the directory the DAG was run from"
    )


def _import_module(module: str, file: str | None) -> bool:
    if file:
        parts = module.split(".")
        path = Path(file).resolve()
        root = path.parents[len(parts) - 1] if path.stem == parts[-1] else None
        if path.name == "__init__.py":
            root = path.parents[len(parts)]
        if root is not None and str(root) not in sys.path:
            sys.path.insert(0, str(root))
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def prune(
    older_than: timedelta | datetime,
    *,
    store: Store | str | None = None,
    results: ResultStore | None = None,
) -> int:
    """Delete saved task results not written within ``older_than`` (or before a datetime).

    Runs whose results are pruned can still be re-run: their succeeded tasks execute
    again when a downstream task needs their value. The run history itself is kept.

    Args:
        older_than: an age (timedelta or pendulum Duration) or an aware cut-off datetime.
        store: the history whose results to prune (default: the configured store).
        results: a result store to prune instead.

    Returns:
        How many runs' results were removed.

    Example:
        >>> pipekit.prune(older_than=timedelta(days=30))
    """
    from pipekit.config import resolve_store
    from pipekit.results import results_for

    if isinstance(older_than, datetime):
        if older_than.tzinfo is None:
            raise PipekitError(
                f"prune(older_than={older_than!r}): give an aware datetime (with a time zone) "
                "or an age such as timedelta(days=30)"
            )
        cutoff = older_than
    elif isinstance(older_than, timedelta):
        if older_than < timedelta(0):
            raise PipekitError(f"prune(older_than={older_than!r}): give a positive age")
        cutoff = datetime.now(UTC) - older_than
    else:
        raise PipekitError(
            f"prune(older_than={older_than!r}): give a timedelta such as timedelta(days=30) "
            "or an aware datetime"
        )
    target = results if results is not None else results_for(resolve_store(store))
    return target.prune(cutoff)
