"""The run loop: runs a DAG's tasks in dependency order and records every state change.

The loop owns scheduling: it launches a task once all its upstream tasks have
succeeded, enforces per-attempt timeouts, asks each task's :class:`pipekit.Retry`
whether and when to try again (waiting through the injected clock), marks the
descendants of a failed task ``upstream_failed``, saves succeeded tasks' results for
re-runs, and writes each change to the history as it happens. Executors only run
single attempts (see :mod:`pipekit.executors.base`), so every executor behaves the
same. A re-run (:class:`pipekit.runner.Resume`) is the same loop started from a
recorded run. :func:`pipekit.runner.execute` sets a loop up and runs it.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import queue
from collections import deque
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from pipekit._binding import bind_planned, plans_for
from pipekit.callbacks import Callback, Dispatcher, Event
from pipekit.context import TaskContext, _current
from pipekit.errors import TaskTimeout
from pipekit.executors.base import Executor, Job, Outcome, format_error, task_failed
from pipekit.results.store import StoreResults, dumps
from pipekit.retry import NO_RETRY
from pipekit.run import Run, TaskRun
from pipekit.state import State
from pipekit.stores.base import AttemptEnded, AttemptStarted, ResultSaved, TaskStateSet
from pipekit.task import Skip

if TYPE_CHECKING:
    from datetime import datetime

    from pipekit.clock import Clock
    from pipekit.dag import DAG, Node
    from pipekit.results.base import ResultStore
    from pipekit.runner import Resume
    from pipekit.stores.base import Change, Store

__all__ = ["Loop", "Recorder"]

_QUEUED, _RUNNING, _SUCCESS, _FAILED = State.QUEUED, State.RUNNING, State.SUCCESS, State.FAILED
_UPSTREAM_FAILED, _SKIPPED = State.UPSTREAM_FAILED, State.SKIPPED

# Job keys are unique in the process: an executor reused by several runs (a backfill's
# dates) never mistakes one run's attempt for another's.
_KEYS = itertools.count()

_UNFETCHABLE: Any = object()
"""What :meth:`Loop.fetch` returns for a remote value that cannot be brought here."""


class Recorder(Protocol):
    """What the loop writes history through (a store, or its group-commit writer)."""

    def record(self, changes: Sequence[Change]) -> None:
        """Apply ``changes`` in order."""
        ...


class Loop:
    """The state of one run while it executes."""

    def __init__(
        self,
        dag: DAG,
        run_id: str,
        params: dict[str, Any],
        store: Recorder,
        executor: Executor,
        clock: Clock,
        log: Any,
        *,
        results: ResultStore,
        retries: bool,
        force: Collection[str],
        resume: Resume | None,
        encoded: Mapping[str, Any],
        history: Store,
        outputs: Mapping[str, str],
    ) -> None:
        self.dag = dag
        self.run_id = run_id
        self.params = params
        self.store = store
        self.executor = executor
        self.clock = clock
        self.log = log
        # Looked up once: the hot path calls these for every task.
        self.tasks = dag.tasks
        self.downstream = dag.downstream
        self.consumers = dag.consumers
        self.dag_name = dag.name
        self.plans = plans_for(dag)
        self.now = clock.now
        self.record = store.record
        self.debug = log.debug
        self.info = log.info
        self.result_store = results
        self.inline_results = isinstance(results, StoreResults) and results.store is history
        # An executor that keeps values remote (Dask futures) says how to fetch one here.
        self.remote = getattr(executor, "gather", None) is not None
        self.gather: Any = executor.gather if self.remote else (lambda value: value)  # type: ignore[attr-defined]
        # An executor may let the loop run a task itself when it is the only one runnable.
        self.inline_alone = bool(getattr(executor, "inline_alone", False))
        # An executor that runs each job inline lets the loop call it directly (no Job).
        self.runs_inline = bool(getattr(executor, "runs_inline", False))
        self.capacity = executor.capacity
        self.retries = retries
        self.force = force
        self.encoded = encoded
        self.outputs = outputs  # each output= path, rendered before the run started
        self.dispatcher = Dispatcher(log)
        self.state: dict[str, State] = dict.fromkeys(dag.order, _QUEUED)
        self.attempts: dict[str, int] = {}
        self.base: dict[str, int] = {}  # attempts made before this execution (re-runs)
        self.errors: dict[str, str] = {}
        self.started: dict[str, datetime] = {}
        self.ended: dict[str, datetime] = {}
        self.results: dict[str, Any] = {}
        if resume is None:
            self.waiting = {tid: len(node.upstream) for tid, node in dag.tasks.items()}
        else:
            self.restore(resume)
        self.ready: deque[str] = deque(
            t for t, n in self.waiting.items() if n == 0 and self.state[t] is _QUEUED
        )
        self.timers: list[tuple[float, int, str]] = []  # (due, seq, task id) heap of retries
        self.running: dict[int, tuple[str, float | None]] = {}  # key -> (task id, deadline)
        self.outcomes: queue.SimpleQueue[Outcome] = queue.SimpleQueue()

    def restore(self, resume: Resume) -> None:
        """Start from a recorded run: done tasks keep their state; ``todo`` waits on ``todo``."""
        todo = resume.todo
        self.results.update(resume.results)
        for tid, rec in resume.run.tasks.items():
            if tid not in self.state:
                continue
            self.attempts[tid] = self.base[tid] = rec.attempts
            if tid not in todo:  # a task run again starts again (its attempts keep times)
                if rec.started_at is not None:
                    self.started[tid] = rec.started_at
                self.state[tid] = rec.state
                if rec.error:
                    self.errors[tid] = rec.error
                if rec.ended_at is not None:
                    self.ended[tid] = rec.ended_at
        self.waiting = {
            tid: sum(1 for u in node.upstream if u in todo) if tid in todo else 0
            for tid, node in self.dag.tasks.items()
        }

    # -- launching -------------------------------------------------------------------------

    def launch(self, tid: str) -> None:
        node: Node = self.tasks[tid]
        task = node.task
        output = None
        if task.output is not None:
            output = self.outputs[tid]
            if tid not in self.force and os.path.exists(output):
                self.skip_existing(tid, output)
                return
        number = self.attempts.get(tid, 0) + 1
        self.attempts[tid] = number
        now = self.now()
        if tid not in self.started:
            self.started[tid] = now
        self.state[tid] = _RUNNING
        run_id = self.run_id
        self.record([AttemptStarted(run_id, tid, number, now)])
        self.debug("task_started", task=tid, attempt=number)
        plans = self.plans.get(tid)
        if plans is None:
            args, kwargs = node.args, node.kwargs
        else:
            args, kwargs = bind_planned(node, plans, self.results, self.params)
        ctx = TaskContext(run_id, self.dag_name, tid, number, self.params, output)
        timeout = task.timeout
        if timeout is None and (
            self.runs_inline
            or (
                self.inline_alone
                and not self.running
                and (self.capacity == 1 or (not self.ready and not self.timers))
            )
        ):
            # Run it here: the sequential executor would do just this, and a threads
            # executor that could run nothing else meanwhile (nothing else is ready, or
            # it has one worker) would only add two thread hand-offs.
            running = self.running
            running[-1] = (tid, None)  # so that Ctrl-C inside it closes the attempt
            token = _current.set(ctx)
            try:
                value = task.fn(*args, **kwargs)
            except BaseException as exc:
                if not task_failed(exc):
                    raise  # Ctrl-C or the like stops the run; the attempt is closed then
                del running[-1]
                self.conclude(tid, number, False, None, exc, format_error(exc))
                return
            finally:
                _current.reset(token)
            del running[-1]
            self.conclude(tid, number, True, value, None, None)
            return
        key = next(_KEYS)
        deadline = self.clock.monotonic() + timeout if timeout is not None else None
        self.running[key] = (tid, deadline)
        self.executor.submit(Job(key, task.fn, args, kwargs, ctx, timeout))

    def skip_existing(self, tid: str, output: str) -> None:
        """The task's output exists: record it skipped and let its downstream tasks run."""
        reason = f"output exists: {output}"
        self.state[tid] = _SKIPPED
        self.errors[tid] = reason
        self.results[tid] = output
        self.store.record([TaskStateSet(self.run_id, [tid], _SKIPPED, self.clock.now(), reason)])
        self.log.info("task_skipped", task=tid, attempt=self.attempts.get(tid, 0), reason=reason)
        self.release(tid)

    def release(self, tid: str) -> None:
        """``tid`` is satisfied: queue each downstream task that waits for nothing else."""
        waiting, state = self.waiting, self.state
        for d in self.downstream[tid]:
            left = waiting[d] - 1
            waiting[d] = left
            if left == 0 and state[d] is _QUEUED:
                self.ready.append(d)

    def notify(
        self, targets: tuple[Callback, ...], kind: str, tid: str | None, **fields: Any
    ) -> None:
        """Queue an :class:`Event` for ``targets`` (built only when there are targets)."""
        if targets:
            event = Event(kind, self.dag.name, self.run_id, tid, self.encoded, **fields)
            self.dispatcher.emit(targets, event)

    # -- outcomes --------------------------------------------------------------------------

    def settle(self, outcome: Outcome) -> None:
        entry = self.running.pop(outcome.key, None)
        if entry is None:
            return  # an attempt already given up on (timed out): its late result is dropped
        tid = entry[0]
        self.conclude(
            tid,
            self.attempts[tid],
            outcome.ok,
            outcome.value,
            outcome.error,
            outcome.error_text,
        )

    def conclude(
        self,
        tid: str,
        number: int,
        ok: bool,
        value: Any,
        error: BaseException | None,
        error_text: str | None,
    ) -> None:
        """Record how attempt ``number`` of ``tid`` ended, and decide what follows."""
        now = self.clock.now()
        self.ended[tid] = now
        if ok:
            self.succeed(tid, number, value, now)
            return
        text = error_text or "unknown error"
        self.errors[tid] = text
        if isinstance(error, Skip):
            self.state[tid] = _SKIPPED
            self.store.record(
                [AttemptEnded(self.run_id, tid, number, _SKIPPED, now, _SKIPPED, text)]
            )
            self.log.info("task_skipped", task=tid, attempt=number, reason=str(error))
            self.mark_descendants(tid, _SKIPPED, now)
            return
        policy = self.dag.tasks[tid].task.retry if self.retries else NO_RETRY
        local = number - self.base.get(tid, 0)  # the policy counts this execution's attempts
        delay = policy.next_delay(local, error) if error is not None else None
        first_line = text.split("\n", 1)[0]
        if delay is not None:
            self.state[tid] = _QUEUED
            self.store.record([AttemptEnded(self.run_id, tid, number, _FAILED, now, _QUEUED, text)])
            self.log.warning(
                "task_retrying", task=tid, attempt=number, delay=delay, error=first_line
            )
            task = self.dag.tasks[tid].task
            self.notify(
                task.on_retry + self.dag.on_retry,
                "retry",
                tid,
                attempt=number,
                state=str(_QUEUED),
                error=first_line,
            )
            if delay <= 0:
                self.ready.append(tid)
            else:
                heapq.heappush(self.timers, (self.clock.monotonic() + delay, number, tid))
            return
        self.state[tid] = _FAILED
        self.store.record([AttemptEnded(self.run_id, tid, number, _FAILED, now, _FAILED, text)])
        self.log.error("task_failed", task=tid, attempt=number, error=first_line)
        self.notify(
            self.dag.tasks[tid].task.on_failure,
            "failure",
            tid,
            attempt=number,
            state=str(_FAILED),
            error=first_line,
        )
        self.mark_descendants(tid, _UPSTREAM_FAILED, now)

    def succeed(self, tid: str, number: int, value: Any, now: datetime) -> None:
        self.results[tid] = value
        self.state[tid] = _SUCCESS
        if tid in self.errors:
            del self.errors[tid]
        task = self.tasks[tid].task
        end = AttemptEnded(self.run_id, tid, number, _SUCCESS, now, _SUCCESS)
        # Only values that another task receives are needed by a re-run.
        if task.persist and self.consumers[tid]:
            if self.inline_results:  # in the history: same transaction as the success
                data = dumps(self.fetch(value)) if self.remote else dumps(value)
                if data is not None:
                    self.record([ResultSaved(self.run_id, tid, data), end])
                else:
                    self.record([end])
                saved = data is not None
            else:
                fetched = self.fetch(value) if self.remote else value
                saved = fetched is not _UNFETCHABLE and self.result_store.save(
                    self.run_id, tid, fetched
                )
                self.record([end])
            if not saved:
                self.log.warning(
                    "result_not_persisted",
                    task=tid,
                    attempt=number,
                    reason="the value cannot be pickled; a re-run executes the task again",
                )
        else:
            self.record([end])
        self.info("task_succeeded", task=tid, attempt=number)
        if task.on_success:
            self.notify(task.on_success, "success", tid, attempt=number, state=str(_SUCCESS))
        self.release(tid)

    def fetch(self, value: Any) -> Any:
        """A remote value fetched here, or :data:`_UNFETCHABLE` when it cannot be.

        (A value the cluster cannot serialize.) It is then not saved, as an
        unpicklable local value is not.
        """
        try:
            return self.gather(value)
        except Exception as exc:
            self.log.warning("result_not_fetched", error=f"{type(exc).__name__}: {exc}")
            return _UNFETCHABLE

    def mark_descendants(self, tid: str, state: State, now: datetime) -> None:
        """Mark the descendants of ``tid`` that will not run now with ``state``.

        Skipped wins over upstream_failed, whichever upstream ended first: a task below
        both a skip and a failure would not run once the failure is fixed, so it is
        skipped (and a re-run leaves it alone), with every executor and timing.
        """
        marked: list[str] = []
        stack = list(self.dag.downstream[tid])
        overridable = (_QUEUED, _UPSTREAM_FAILED) if state is _SKIPPED else (_QUEUED,)
        while stack:
            d = stack.pop()
            if self.state[d] not in overridable:
                continue  # already marked through another path
            self.state[d] = state
            marked.append(d)
            stack.extend(self.dag.downstream[d])
        if marked:
            self.store.record([TaskStateSet(self.run_id, marked, state, now)])

    def expire(self) -> None:
        """Fail every attempt whose deadline has passed, and free its slot."""
        now = self.clock.monotonic()
        for key, (tid, deadline) in list(self.running.items()):
            if deadline is not None and deadline <= now:
                self.executor.cancel(key)
                timeout = self.dag.tasks[tid].task.timeout or 0.0
                exc = TaskTimeout(tid, timeout)
                self.settle(Outcome(key, False, None, exc, format_error(exc)))

    # -- the loop --------------------------------------------------------------------------

    def loop(self) -> None:
        capacity = self.executor.capacity
        outcomes = self.outcomes
        # An executor may hand the loop a queued quick job instead of letting it wait.
        run_quick = getattr(self.executor, "run_quick", None)
        while True:
            while self.ready and len(self.running) < capacity:
                self.launch(self.ready.popleft())
                while not outcomes.empty():
                    self.settle(outcomes.get_nowait())
            while not outcomes.empty():
                self.settle(outcomes.get_nowait())
            if self.timers and self.timers[0][0] <= self.clock.monotonic():
                self.ready.append(heapq.heappop(self.timers)[2])
                continue
            if self.ready and len(self.running) < capacity:
                continue
            if not self.running:
                if not self.timers:
                    return
                self.clock.sleep(self.timers[0][0] - self.clock.monotonic())
                continue
            wake = [d for _, d in self.running.values() if d is not None]
            if self.timers:
                wake.append(self.timers[0][0])
            if not wake and run_quick is not None:  # no deadline can pass meanwhile
                done = run_quick()
                if done is not None:
                    self.settle(done)
                    continue
            timeout = max(0.0, min(wake) - self.clock.monotonic()) if wake else None
            with contextlib.suppress(queue.Empty):
                self.settle(outcomes.get(timeout=timeout))
            if wake:
                self.expire()

    def interrupt(self, exc: BaseException) -> str:
        """Record the end of every running attempt after ``exc`` stopped the loop."""
        reason = f"run interrupted by {type(exc).__name__}"
        now = self.clock.now()
        changes = []
        for tid, _ in self.running.values():
            self.state[tid] = _FAILED
            self.errors[tid] = reason
            self.ended[tid] = now
            changes.append(
                AttemptEnded(self.run_id, tid, self.attempts[tid], _FAILED, now, _FAILED, reason)
            )
        self.running.clear()
        if changes:
            self.store.record(changes)
        return reason

    def finish(self, state: State, error: str | None) -> None:
        """Call the DAG's run callbacks, then wait until every callback has been called."""
        failed = [t for t in self.dag.order if self.state[t] is _FAILED]
        if error is None and failed:
            error = f"{failed[0]}: " + self.errors.get(failed[0], "").split("\n", 1)[0]
        targets = self.dag.on_failure if state is _FAILED else self.dag.on_success
        kind = "failure" if state is _FAILED else "success"
        self.notify(
            targets, kind, None, attempt=None, state=str(state), error=error, failed_tasks=failed
        )
        self.dispatcher.close()

    def build(
        self, state: State, started_at: datetime, ended_at: datetime, error: str | None
    ) -> Run:
        # Locals, and no identity call per task: a 10k-task run builds 10k of these.
        states, attempts, errors = self.state, self.attempts, self.errors
        starts, ends, results = self.started, self.ended, self.results
        if self.remote:  # values the executor keeps remote: fetch them (None if none can be)
            results = {tid: self.fetch(value) for tid, value in results.items()}
            results = {t: None if v is _UNFETCHABLE else v for t, v in results.items()}
        tasks = {
            tid: TaskRun(
                tid,
                states[tid],
                attempts.get(tid, 0),
                results.get(tid),
                errors.get(tid),
                starts.get(tid),
                ends.get(tid),
            )
            for tid in self.dag.order
        }
        return Run(
            self.run_id,
            self.dag.name,
            self.params,
            state,
            started_at,
            ended_at,
            tasks,
            self.dag.module,
            self.dag.file,
            error,
        )
