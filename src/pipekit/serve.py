"""The scheduler: trigger each due interval of each scheduled DAG exactly once.

``pipekit.serve(*dags_or_paths)`` watches DAG objects, DAG files and folders of DAG
files. On every pass it asks each scheduled DAG which intervals have ended since its
``start`` (only the latest one when ``catchup=False``), skips the ones the run history
already holds (so a restart never runs an interval twice), and starts the rest in order,
at most ``max_active_runs`` at a time per DAG. Before starting an interval it claims it
in the store (:meth:`pipekit.stores.Store.claim`, a unique row in the database), so
several schedulers serving the same DAGs from one history (on one machine or many)
start each interval exactly once: the one whose claim succeeds runs it, the others
skip it. Files are re-read when they change.
``once=True`` makes a single pass and waits for the runs it started (what cron-driven
deployments and tests use). SIGINT or SIGTERM stops it cleanly: no new runs start, and
the runs already going are waited for (a second signal stops at once; the history then
shows those runs as running, and ``pipekit.rerun`` finishes them).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterable, Mapping
from types import FrameType
from typing import TYPE_CHECKING, Any

from pipekit.dag import DAG
from pipekit.errors import PipekitError
from pipekit.params import recorded_key

if TYPE_CHECKING:
    from pathlib import Path

    from pipekit.clock import Clock
    from pipekit.executors.base import ExecutorSpec
    from pipekit.run import Run
    from pipekit.stores.base import Store

__all__ = ["Scheduler", "serve"]


def serve(
    *dags_or_paths: DAG | str | Path,
    store: Store | str | None = None,
    once: bool = False,
    executor: ExecutorSpec = "threads",
    max_workers: int | None = None,
    clock: Clock | None = None,
    poll: float = 1.0,
    stop: threading.Event | None = None,
) -> list[Run]:
    """Run every due interval of the given DAGs, once each; see the module docstring.

    Args:
        *dags_or_paths: DAG objects, DAG files, or folders of DAG files.
        store: the history to read and write (default: the configured store).
        once: make one pass (start every due run, wait for them) and return.
        executor: the executor of each run: a name, or a factory (a class or a
            zero-argument callable) that each run calls to make its own.
        max_workers: tasks at once within each run (with a name only).
        clock: time source (tests pass :class:`pipekit.testing.FakeClock`).
        poll: seconds between passes when nothing is due sooner.
        stop: an event that stops the scheduler when set (for embedding and tests).

    Returns:
        The runs this call started, once they have ended, in start order.

    Raises:
        PipekitError: nothing to serve, a path that does not exist, an unknown
            executor name, ``max_workers`` without a name, or an executor object (runs
            overlap; an executor object serves one run at a time).
    """
    if not dags_or_paths:
        raise PipekitError("serve() needs DAGs, DAG files or folders to serve")
    scheduler = Scheduler(
        dags_or_paths, store=store, executor=executor, max_workers=max_workers, clock=clock
    )
    return scheduler.run(once=once, poll=poll, stop=stop)


class Scheduler:
    """The state of a :func:`serve` loop: sources, active runs, and what has been started."""

    def __init__(
        self,
        sources: Iterable[DAG | str | Path],
        *,
        store: Store | str | None,
        executor: ExecutorSpec,
        max_workers: int | None,
        clock: Clock | None,
    ) -> None:
        import structlog

        from pipekit.clock import SystemClock
        from pipekit.config import resolve_store
        from pipekit.executors import check_executor, is_factory

        if not isinstance(executor, str) and not is_factory(executor):
            raise PipekitError(
                f"serve: executor={executor!r} is an object, which serves one run at a time, "
                "and the scheduler runs intervals at once; pass a factory making one "
                "(executor=lambda: ...; each run makes its own) or the executor by name"
            )
        check_executor(executor, max_workers)
        self.static: list[DAG] = []
        self.paths: list[Path] = []
        for src in sources:
            if isinstance(src, DAG):
                self.static.append(src)
            elif isinstance(src, str | os.PathLike):
                from pathlib import Path

                if not Path(src).exists():
                    raise PipekitError(f"serve: no such file or folder {str(src)!r}")
                self.paths.append(Path(src))
            else:
                raise PipekitError(f"serve: {src!r} is not a DAG, a file or a folder")
        self.store = resolve_store(store)
        self.executor = executor
        self.max_workers = max_workers
        self.clock = clock or SystemClock()
        self.log = structlog.get_logger("pipekit").bind(component="scheduler")
        self.mtimes: dict[Path, float] = {}
        self.loaded: dict[Path, list[DAG]] = {}
        self.active: dict[tuple[str, str], threading.Thread] = {}
        self.order: list[tuple[str, str]] = []  # runs launched, in launch order
        self.finished: dict[tuple[str, str], Run] = {}
        self.broken: set[tuple[str, str]] = set()  # could not start: not tried again
        self.launched: set[tuple[str, str]] = set()  # every interval this scheduler started
        self.elsewhere: set[tuple[str, str]] = set()  # claimed by another scheduler
        self.clashes: set[tuple[str, ...]] = set()  # DAG names defined twice, logged once
        # Who this scheduler is in the store's claims (unique across hosts and restarts).
        import socket
        import uuid

        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.forced = False

    # -- DAGs ----------------------------------------------------------------------------

    def dags(self) -> list[DAG]:
        """The DAGs to serve now, re-reading files that changed since the last pass."""
        from pipekit.loader import dags_in, find_files, load_file

        seen: set[Path] = set()
        for root in self.paths:
            for file in find_files(root):
                seen.add(file)
                mtime = file.stat().st_mtime
                if self.mtimes.get(file) == mtime:
                    continue
                self.mtimes[file] = mtime
                try:
                    self.loaded[file] = dags_in(load_file(file))
                    self.log.info(
                        "dag_file_loaded", file=str(file), dags=[d.name for d in self.loaded[file]]
                    )
                except PipekitError as exc:
                    self.loaded[file] = []
                    self.log.error("dag_file_failed", file=str(file), error=str(exc))
        for file in list(self.loaded):
            if file not in seen:  # deleted
                del self.loaded[file]
                self.mtimes.pop(file, None)
        out = list(self.static)
        for found in self.loaded.values():
            out.extend(found)
        return [d for d in self._unique(out) if d.schedule is not None]

    def _unique(self, dags: list[DAG]) -> list[DAG]:
        """``dags`` without the names that are defined twice.

        Runs are recorded by DAG name, so neither of two different DAGs called the same
        is served (running the wrong one is worse); the clash is logged once, naming
        the files.
        """
        by_name: dict[str, list[DAG]] = {}
        for d in dags:
            same = by_name.setdefault(d.name, [])
            if not any(other is d for other in same):
                same.append(d)
        out = []
        for name, found in by_name.items():
            if len(found) == 1:
                out.append(found[0])
                continue
            files = [str(d.file or d.module or "<DAG object>") for d in found]
            if (name, *files) in self.clashes:
                continue
            self.clashes.add((name, *files))
            self.log.error(
                "dag_name_clash",
                dag=name,
                files=files,
                error=f"DAG name {name!r} is defined {len(found)} times ({', '.join(files)}); "
                "rename all but one (@dag(name=...) or name: in YAML): none of them is served",
            )
        return out

    def due(self, dag: DAG, now: Any) -> list[Any]:
        """Logical dates of ``dag`` whose interval has ended by ``now`` and that have no run."""
        from pipekit.params import encode_params

        schedule = dag.schedule
        param = dag.logical_param
        if schedule is None or param is None:
            return []
        last_end = schedule.floor(now)  # the latest schedule point at or before now
        if last_end is None:
            return []
        starts: list[Any] = []
        if dag.catchup and dag.start is not None:
            starts = schedule.logical_dates(dag.start, last_end)
            starts = [s for s in starts if schedule.next_after(s) <= now]
        else:
            latest = schedule.floor(last_end.subtract(microseconds=1))
            if latest is not None and (dag.start is None or latest >= dag.start):
                starts = [latest]
        if not starts:
            return []
        as_date = dag.params[param].kind == "date"
        values = [s.date() for s in starts] if as_date else starts
        with self.lock:  # read what this scheduler started before the history (no race)
            launched = self.launched | self.broken | self.elsewhere
        recorded = {
            self._interval_of(dag, param, r.params) for r in self.store.list_runs(dag=dag.name)
        }
        out = []
        for v in values:
            encoded = encode_params(dag.name, {param: v})
            key = str(encoded[param])
            if recorded_key(dag.params, encoded) in recorded or (dag.name, key) in launched:
                continue
            out.append(v)
        return out

    @staticmethod
    def _interval_of(dag: DAG, param: str, params: Mapping[str, Any]) -> str:
        """The recorded run's interval, as a key equal for equal instants."""
        return recorded_key(dag.params, {param: params.get(param)})

    # -- running -------------------------------------------------------------------------

    def launch(self, dag: DAG, logical: Any) -> bool:
        """Claim one interval and start its run in a daemon thread; False if claimed elsewhere."""
        from pipekit.params import encode_params
        from pipekit.runner import execute

        param = dag.logical_param
        assert param is not None
        key = (
            dag.name,
            str(encode_params(dag.name, {param: logical})[param]),
        )
        if not self.store.claim(dag.name, key[1], self.owner):
            with self.lock:
                self.elsewhere.add(key)
            self.log.info("run_claimed_elsewhere", dag=dag.name, logical_date=key[1])
            return False

        def work() -> None:
            try:
                run = execute(
                    dag,
                    {param: logical},
                    executor=self.executor,
                    max_workers=self.max_workers,
                    store=self.store,
                    raise_on_failure=False,
                    clock=None,
                )
                with self.lock:
                    self.finished[key] = run
            except Exception as exc:
                with self.lock:
                    self.broken.add(key)
                self.log.error(
                    "scheduled_run_failed_to_start",
                    dag=dag.name,
                    logical_date=key[1],
                    error=f"{type(exc).__name__}: {exc}",
                )
                self._unclaim(dag, param, key)
            finally:
                with self.lock:
                    self.active.pop(key, None)
                self.wake.set()

        thread = threading.Thread(target=work, name=f"pipekit-serve-{dag.name}", daemon=True)
        with self.lock:
            self.active[key] = thread
            self.launched.add(key)
            self.order.append(key)
        self.log.info("run_triggered", dag=dag.name, logical_date=key[1])
        thread.start()
        return True

    def _unclaim(self, dag: DAG, param: str, key: tuple[str, str]) -> None:
        """Release the claim of a run that never got recorded, so a restarted scheduler retries.

        A run that was recorded keeps its claim (the history shows it, so no scheduler
        starts it again anyway); so does one whose store cannot be read.
        """
        try:
            mine = recorded_key(dag.params, {param: key[1]})
            recorded = any(
                self._interval_of(dag, param, r.params) == mine
                for r in self.store.list_runs(dag=dag.name)
            )
            if not recorded:
                self.store.release(dag.name, key[1], self.owner)
        except Exception as exc:  # the store failing is what stopped the run, most likely
            self.log.error("claim_not_released", dag=dag.name, logical_date=key[1], error=str(exc))

    def running(self, dag: DAG) -> int:
        """How many runs of ``dag`` this scheduler has going."""
        with self.lock:
            return sum(1 for name, _ in self.active if name == dag.name)

    def tick(self, now: Any) -> int:
        """Start what is due at ``now`` within each DAG's max_active_runs; return how many."""
        launched = 0
        for dag in self.dags():
            free = dag.max_active_runs - self.running(dag)
            if free <= 0:
                continue
            for logical in self.due(dag, now):
                if free <= 0:
                    break
                if self.launch(dag, logical):
                    launched += 1
                    free -= 1
        return launched

    def run(self, *, once: bool, poll: float, stop: threading.Event | None) -> list[Run]:
        """The loop; see :func:`serve`."""
        stopping = stop or threading.Event()
        restore = self._install_signals(stopping)
        self.log.info("scheduler_started", once=once, sources=len(self.static) + len(self.paths))
        try:
            if once:
                now = self.clock.now()
                while not stopping.is_set():
                    self.wake.clear()
                    launched = self.tick(now)
                    if not launched and not self.active:
                        break
                    self.wake.wait(timeout=poll)
            else:
                while not stopping.is_set():
                    self.wake.clear()
                    self.tick(self.clock.now())
                    if not self.wake.is_set():
                        self._sleep(poll)
        finally:
            self._wait_active(stopping)
            restore()
            self.log.info("scheduler_stopped", runs=len(self.finished))
        with self.lock:
            return [self.finished[k] for k in self.order if k in self.finished]

    def _sleep(self, poll: float) -> None:
        from pipekit.clock import SystemClock

        if isinstance(self.clock, SystemClock):
            self.wake.wait(timeout=poll)  # wakes early when a run ends or a signal comes
        else:
            self.clock.sleep(poll)  # an injected clock advances instead of waiting

    def _wait_active(self, stopping: threading.Event) -> None:
        while True:
            with self.lock:
                threads = list(self.active.values())
            if not threads:
                return
            if stopping.is_set() and self.forced:
                return
            threads[0].join(timeout=0.2)

    def _install_signals(self, stopping: threading.Event) -> Any:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous: dict[int, Any] = {}

        def handle(signum: int, frame: FrameType | None) -> None:
            if stopping.is_set():
                self.forced = True  # a second signal: stop waiting for running runs
                return
            self.log.warning("scheduler_stopping", signal=signal.Signals(signum).name)
            stopping.set()
            self.wake.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handle)

        def restore() -> None:
            for sig, old in previous.items():
                signal.signal(sig, old)

        return restore
