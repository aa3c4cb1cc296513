"""Executing a run: :func:`execute` checks the params, records the start, runs the loop.

:meth:`pipekit.DAG.run`, :func:`pipekit.rerun`, :func:`pipekit.backfill` and the
scheduler all run through :func:`execute`: it binds and encodes the run parameters,
picks the store, the executor and the clock, records the run's start (or, for a
re-run described by a :class:`Resume`, its re-opening), runs the
:class:`pipekit._loop.Loop`, records the end, and builds the :class:`pipekit.Run`.
"""

from __future__ import annotations

import os
import random
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipekit._loop import Loop, Recorder
from pipekit._writer import GroupCommit
from pipekit.errors import RunFailed
from pipekit.params import bind_params, encode_params
from pipekit.run import Run
from pipekit.state import State
from pipekit.stores.base import AttemptEnded, RunEnded, RunResumed, RunStarted

if TYPE_CHECKING:
    from datetime import datetime

    from pipekit.clock import Clock
    from pipekit.dag import DAG
    from pipekit.executors.base import Executor, ExecutorSpec
    from pipekit.stores.base import Store

__all__ = ["Resume", "execute", "new_run_id"]


_RUNNING, _SUCCESS, _FAILED = State.RUNNING, State.SUCCESS, State.FAILED
_UPSTREAM_FAILED = State.UPSTREAM_FAILED


@dataclass
class Resume:
    """What a re-run starts from (built by :func:`pipekit.rerun`).

    Attributes:
        run: the recorded run being executed again (its id, start and tasks).
        todo: the tasks to execute; every other task of the DAG is done.
        results: values of done tasks that tasks in ``todo`` need.
        added: tasks of the DAG that the recorded run did not have (all in ``todo``).
    """

    run: Run
    todo: set[str]
    results: dict[str, Any] = field(default_factory=dict)
    added: list[str] = field(default_factory=list)


# Run ids end in 48 random bits from a generator of our own, seeded from the OS (a
# getrandom() call per run costs 10 us here) and reseeded in a forked child, so that
# neither a fork nor a task calling random.seed() can repeat an id.
_ids = random.Random(os.urandom(32))
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _ids.seed(os.urandom(32)))


def new_run_id(now: datetime) -> str:
    """A unique, time-ordered, copy-pasteable run id: ``20240105T101530-3fa9c2e1b4d7``."""
    # %-formatting of the fields: strftime costs 2 us more, once per run of a backfill.
    return "%04d%02d%02dT%02d%02d%02d-%012x" % (  # noqa: UP031 (the fastest here)
        now.year,
        now.month,
        now.day,
        now.hour,
        now.minute,
        now.second,
        _ids.getrandbits(48),
    )


def _begin(
    history: Recorder,
    dag: DAG,
    run_id: str,
    now: datetime,
    started_at: datetime,
    encoded: Mapping[str, Any],
    resume: Resume | None,
    log: Any,
    tag: dict[str, Any],
) -> None:
    """Record the start of a run, or the re-opening of a recorded one."""
    if resume is None:
        history.record(
            [RunStarted(run_id, dag.name, encoded, dag.order, started_at, dag.module, dag.file)]
        )
        log.info("run_started", params=encoded, **tag)
    else:
        added = set(resume.added)
        reset = [t for t in dag.order if t in resume.todo and t not in added]
        # Attempts left open by a process that died are closed, so the history says so.
        lost = "attempt abandoned: the process running it ended before it finished"
        changes: list[Any] = [
            AttemptEnded(run_id, t, r.attempts, _FAILED, now, _FAILED, lost)
            for t, r in resume.run.tasks.items()
            if r.state == _RUNNING and r.attempts > 0
        ]
        changes.append(RunResumed(run_id, now, reset, list(resume.added)))
        history.record(changes)
        todo = [t for t in dag.order if t in resume.todo]
        log.info("run_started", params=encoded, tasks=todo, **tag)


@dataclass(frozen=True, slots=True)
class _Held:
    """A run's executor, and what the run does with it when it ends."""

    engine: Executor
    owned: bool
    """Made for this run (by name or factory): shut down and closed when it ends."""
    keep: bool
    """The caller's next run reuses it: left running (still cancelled on an interrupt)."""

    def release(self, *, cancel: bool = False) -> None:
        """Let go of the executor as the run ends (``cancel``: killing what still runs)."""
        if self.keep and not cancel:
            return
        if self.owned and not self.keep:
            from pipekit.executors import dispose

            dispose(self.engine, cancel=cancel)
        else:
            self.engine.shutdown(cancel=cancel)


def _abandon(
    loop: Loop,
    held: _Held,
    writer: GroupCommit,
    shared: bool,
    exc: BaseException,
    tag: dict[str, Any],
) -> None:
    """The loop stopped on ``exc``: kill what runs, record the run failed, call callbacks."""
    held.release(cancel=True)
    error: str | None = None
    try:
        error = loop.interrupt(exc)
        writer.record([RunEnded(loop.run_id, _FAILED, loop.clock.now(), error)])
        writer.flush(loop.run_id)
    except Exception as store_exc:  # the store itself may be what failed
        loop.log.error("run_not_recorded", error=str(store_exc))
    finally:
        if not shared:
            writer.close()
    loop.log.error("run_finished", state=str(_FAILED), error=error, **tag)
    loop.finish(_FAILED, error)


def _commit_end(writer: GroupCommit, shared: bool, dag: DAG, run_id: str) -> None:
    """Commit the whole run now: before run() returns and before run callbacks fire.

    (The callbacks may read the history, also when the writer is shared.)
    """
    if not shared:
        try:
            writer.flush(run_id)
        finally:
            writer.close()
    elif dag.on_success or dag.on_failure:
        writer.flush(run_id)


def execute(
    dag: DAG,
    params: Mapping[str, Any],
    *,
    executor: ExecutorSpec,
    max_workers: int | None,
    store: Store | str | None,
    raise_on_failure: bool,
    clock: Clock | None,
    retries: bool = True,
    force: Collection[str] = (),
    resume: Resume | None = None,
    writer: GroupCommit | None = None,
    keep_executor: bool = False,
) -> Run:
    """Run ``dag`` once with ``params`` (or finish ``resume``'s run); see :meth:`pipekit.DAG.run`.

    Args:
        dag: the DAG.
        params: its run parameters, as given (checked and converted here).
        executor: an executor name, object or factory (an executor made here, by name
            or factory, is shut down and closed after the run).
        max_workers: bound on concurrent tasks for a named executor.
        store: the history store (None: the default).
        raise_on_failure: raise :class:`pipekit.RunFailed` when the run fails.
        clock: the time source (None: the system clock).
        retries: False runs every task once, whatever its retry policy (backfills).
        force: tasks that run even when their ``output=`` exists.
        resume: a recorded run to execute again, keeping its id (see ``pipekit.rerun``).
        writer: a group-commit writer shared with other runs (a backfill's): the run's
            history goes through it, and is not flushed before this returns unless the
            DAG has run callbacks (the owner flushes; each change is still committed
            within 50 ms, and a store error is the owner's to read from the writer).
        keep_executor: leave the executor running for the caller's next run (it must
            accept ``start`` again); it is still shut down, cancelling, on an interrupt.
    """
    import structlog

    from pipekit.clock import SystemClock
    from pipekit.config import resolve_store
    from pipekit.executors import is_factory, make_executor
    from pipekit.outputs import render_outputs
    from pipekit.results import results_for

    bound = bind_params(dag.name, dag.params, params, dag.tz)
    encoded = encode_params(dag.name, bound)
    outputs = render_outputs(dag, bound)
    history = resolve_store(store)
    results = results_for(history)
    engine = make_executor(executor, max_workers)
    owned = isinstance(executor, str) or is_factory(executor)
    held = _Held(engine, owned, keep_executor)
    clock = clock or SystemClock()
    now = clock.now()
    if resume is None:
        run_id, started_at = new_run_id(now), now
    else:
        run_id, started_at = resume.run.id, resume.run.started_at
    log = structlog.get_logger("pipekit").bind(dag=dag.name, run_id=run_id)
    # Run events carry attempt=1 on a first execution; a re-run's are marked rerun=True.
    tag: dict[str, Any] = {"attempt": 1} if resume is None else {"rerun": True}
    shared_writer = writer is not None
    if writer is None:
        writer = GroupCommit(history)  # batched, ordered, committed within 50 ms
    loop = Loop(
        dag,
        run_id,
        bound,
        writer,
        engine,
        clock,
        log,
        results=results,
        retries=retries,
        force=frozenset(force),
        resume=resume,
        encoded=encoded,
        history=history,
        outputs=outputs,
    )
    try:  # an executor that cannot start (a cluster out of reach) leaves no run behind
        engine.start(loop.outcomes.put)
        _begin(writer, dag, run_id, now, started_at, encoded, resume, log, tag)
    except BaseException:
        held.release()
        raise
    try:
        loop.loop()
    except BaseException as exc:  # Ctrl-C or a store failure: record what we know, re-raise
        _abandon(loop, held, writer, shared_writer, exc, tag)
        raise
    held.release()
    failed = any(s is _FAILED or s is _UPSTREAM_FAILED for s in loop.state.values())
    state = _FAILED if failed else _SUCCESS
    ended_at = clock.now()
    writer.record([RunEnded(run_id, state, ended_at)])
    _commit_end(writer, shared_writer, dag, run_id)
    (log.error if failed else log.info)("run_finished", state=str(state), **tag)
    loop.finish(state, None)
    run = loop.build(state, started_at, ended_at, None)
    if failed and raise_on_failure:
        raise RunFailed(run)
    return run
