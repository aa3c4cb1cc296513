# mypy: disallow-untyped-calls=False
# (distributed ships py.typed, but Client, LocalCluster and Future methods are unannotated.)
"""The Dask executor: attempts run on a dask.distributed cluster, and their values stay there.

For DAGs whose tasks need more cores (or memory) than one machine has, pipekit does not
grow a cluster of its own: it hands attempts to a Dask scheduler people already run (or
to a :class:`~distributed.LocalCluster` of worker processes it starts). The run loop is
unchanged: it still decides what runs when, retries, enforces timeouts and records the
history; this executor only runs single attempts on the cluster. How it maps the
executor contract (:mod:`pipekit.executors.base`) onto Dask:

* **Values stay on the cluster.** A succeeded attempt's outcome value is its Dask
  ``Future``; a downstream task receives it in ``Job.args``, and Dask hands the value to
  the downstream worker directly (from another worker's memory when needed), never
  through the pipekit process. The loop calls :meth:`DaskExecutor.gather` only where it
  needs the value itself: to save it for re-runs and for ``Run.tasks[...].result``.
* **Pipekit decides retries.** Each attempt is one Dask task submitted with
  ``retries=0``. A worker that dies mid-attempt fails that attempt (``WorkerDied: ...``),
  and the task's :class:`pipekit.Retry` policy decides whether to try again. Dask's own
  rescheduling of a task whose worker died is off on the clusters pipekit starts
  (``distributed.scheduler.allowed-failures = 0``); on other schedulers the executor
  watches the scheduler's worker-removal events and fails the attempt at once (set
  ``allowed-failures`` to 0 there too, so that Dask does not start a second copy
  meanwhile).
* **Timeouts.** The worker runs an attempt that has a timeout in a helper thread and
  gives up on it when the time is up, freeing the worker's slot (the thread is
  abandoned, as the threads executor does); the loop cancels the attempt's future.
* **Code reaches the workers** as the processes executor sends it: a ``@task``
  function of an importable module by reference (the worker imports the module), any
  other function by value (cloudpickle), with the attempt's context; the worker adds
  the submitting process's ``sys.path`` entries it lacks, so DAG files importable here
  are importable on workers that share the file system. Workers need pipekit (and the
  tasks' libraries) installed.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
import uuid
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import replace
from types import TracebackType
from typing import TYPE_CHECKING, Any

from pipekit.errors import PipekitError
from pipekit.executors._byref import dumps_job
from pipekit.executors._daskworker import Failed, attempt
from pipekit.executors.base import (
    Job,
    Outcome,
    Report,
    check_max_workers,
    error_head,
    format_error,
)

if TYPE_CHECKING:
    from distributed import Client, Future, LocalCluster

__all__ = ["ADDRESS_ENV", "DaskExecutor", "close_shared", "local_cluster"]

ADDRESS_ENV = "PIPEKIT_DASK_ADDRESS"
"""The environment variable with the scheduler address that ``executor="dask"`` uses."""


def local_cluster(**options: Any) -> LocalCluster:
    """Start a :class:`distributed.LocalCluster` of worker processes, as pipekit needs it.

    Workers are processes (the GIL does not limit CPU-bound tasks), the scheduler's web
    server takes a free port (``dashboard_address=":8787"`` to pick one), and the
    scheduler fails a task whose worker dies instead of rescheduling it
    (``allowed-failures = 0``), so that pipekit's retry policy decides.

    Args:
        **options: passed to ``LocalCluster`` (``n_workers``, ``threads_per_worker``,
            ``memory_limit``, ``dashboard_address=":8787"``, ...).

    Example:
        >>> cluster = local_cluster(n_workers=2, threads_per_worker=1)  # doctest: +SKIP
    """
    import dask
    from distributed import LocalCluster

    settings: dict[str, Any] = {"processes": True, "dashboard_address": ":0", **options}
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        return LocalCluster(**settings)


class DaskExecutor:
    """Runs attempts on a Dask cluster; succeeded attempts' values stay there as futures.

    Needs ``dask.distributed`` (``pip install 'pipekit[dask]'``); it is imported when the
    executor first starts. Give at most one of ``address`` and ``client``:

    * ``address``: the scheduler of a running cluster (``"tcp://scheduler:8786"``);
    * ``client``: a ``distributed.Client`` you already have (never closed by pipekit);
    * neither: ``$PIPEKIT_DASK_ADDRESS`` if set, else a :func:`local_cluster` started
      on first use with ``cluster_options``.

    A cluster or client the executor made is kept across runs (pass the same executor
    to many runs) and released by :meth:`close` (or ``with DaskExecutor() as ex:``) or at
    interpreter exit. ``executor="dask"`` by name uses one cluster shared by the whole
    process instead (see :func:`close_shared`). The module docstring says how retries,
    timeouts and dead workers behave.

    Args:
        address: a scheduler address.
        client: an existing client.
        max_workers: at most this many attempts at once (default: the cluster's threads
            when a run starts).
        cluster_options: ``LocalCluster`` options when the executor starts one.

    Example:
        >>> ex = DaskExecutor("tcp://scheduler:8786")  # doctest: +SKIP
        >>> flights.run(ds="2013-02-08", executor=ex)  # doctest: +SKIP
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        client: Client | None = None,
        max_workers: int | None = None,
        cluster_options: Mapping[str, Any] | None = None,
    ) -> None:
        check_max_workers(max_workers)
        if address is not None and (not isinstance(address, str) or not address.strip()):
            raise PipekitError(
                f"DaskExecutor address={address!r} is not a scheduler address; pass one such "
                "as 'tcp://scheduler:8786', or none to use $PIPEKIT_DASK_ADDRESS or a local cluster"
            )
        if cluster_options is not None and (
            not isinstance(cluster_options, Mapping)
            or not all(isinstance(k, str) for k in cluster_options)
        ):
            raise PipekitError(
                f"DaskExecutor cluster_options={cluster_options!r} must be a mapping of "
                "LocalCluster options, such as {'n_workers': 2, 'threads_per_worker': 1}"
            )
        if address is not None and client is not None:
            raise PipekitError(
                "DaskExecutor takes a scheduler address or a client, not both; pass one"
            )
        self.address = address
        """The scheduler address given, if any."""
        self.max_workers = max_workers
        """The bound on attempts at once given, if any."""
        self.capacity = max_workers or 1
        """Attempts at once: ``max_workers``, else the cluster's threads (set on start)."""
        self.cluster_options = dict(cluster_options or {})
        """LocalCluster options, used when the executor starts a cluster."""
        self._client = client
        self._own: list[Any] = []  # what this executor made, closed by close()
        self._shared = False
        self._lock = threading.Lock()
        self._report: Report | None = None
        self._running: dict[int, Future[Any]] = {}  # this run's attempts, by Job key
        # Dask key -> Job key and the report of the run that submitted it (worker-loss events)
        self._keys: dict[str, tuple[int, Report]] = {}
        self._given_up: set[str] = set()  # Dask keys cancelled by the loop or failed by an event

    def __repr__(self) -> str:
        """Show where attempts go."""
        where = self.address or ("shared" if self._shared else "client" if self._client else "")
        return f"DaskExecutor({where!r}, max_workers={self.max_workers!r})"

    @classmethod
    def shared(cls, max_workers: int | None = None) -> DaskExecutor:
        """An executor on the process-wide cluster (what ``executor="dask"`` makes)."""
        executor = cls(max_workers=max_workers)
        executor._shared = True
        return executor

    # -- the cluster ---------------------------------------------------------------

    @property
    def client(self) -> Client:
        """The Dask client, connecting (or starting a LocalCluster) on first use."""
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            return self._client

    def _connect(self) -> Client:
        try:
            from distributed import Client
        except ImportError as exc:
            raise PipekitError(
                "the dask executor needs dask.distributed: pip install 'pipekit[dask]'"
            ) from exc
        if self._shared:
            return _shared_client()
        address = self.address or os.environ.get(ADDRESS_ENV)
        if address:
            where = "given to DaskExecutor" if self.address else f"in ${ADDRESS_ENV}"
            client = _client(address, where)
        else:
            cluster = local_cluster(**self.cluster_options)
            self._own.append(cluster)
            client = Client(cluster, set_as_default=False)
        self._own.insert(0, client)
        return client

    def close(self) -> None:
        """Close the client and the LocalCluster this executor made (not a given client)."""
        with self._lock:
            made, self._own = self._own, []
            if made:
                self._client = None
        if made:
            _unwatch(made[0], self)
        for thing in made:
            with contextlib.suppress(Exception):
                thing.close()

    def __enter__(self) -> DaskExecutor:
        """Use the executor in a ``with`` block that closes it."""
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close what the executor made."""
        self.close()

    # -- the executor contract -----------------------------------------------------

    def start(self, report: Report) -> None:
        """Connect, watch for dead workers, and size :attr:`capacity` to the cluster.

        Raises:
            PipekitError: the scheduler cannot be reached (naming its address and
                where it came from), or dask.distributed is not installed.
        """
        client = self.client
        self._report = report
        _watch(client, self)
        if self.max_workers is None:
            self.capacity = max(1, sum(client.nthreads().values()))

    def submit(self, job: Job) -> None:
        """Submit ``job`` as one Dask task; futures in its arguments resolve on the cluster."""
        report = self._report
        assert report is not None, "start() first"
        ctx = job.context
        try:
            payload = dumps_job(replace(job, args=(), kwargs={}))
        except Exception as exc:
            err = PipekitError(
                f"task {ctx.task!r} cannot be sent to the Dask cluster "
                f"({error_head(exc)}); define tasks in importable modules or files"
            )
            report(Outcome(job.key, False, None, err, f"PipekitError: {err}"))
            return
        dask_key = f"{ctx.task}-{ctx.run_id}-{ctx.attempt}-{uuid.uuid4().hex[:8]}"
        with self._lock:
            self._keys[dask_key] = (job.key, report)
        try:  # serializes the arguments: one that cannot be pickled raises here
            future = self.client.submit(
                attempt,
                payload,
                list(sys.path),
                job.args,
                dict(job.kwargs),
                key=dask_key,
                pure=False,
                retries=0,
            )
        except Exception as exc:  # fail this attempt, never the run
            with self._lock:
                self._keys.pop(dask_key, None)
            report(_not_submitted(job, exc))
            return
        with self._lock:
            self._running[job.key] = future
        future.add_done_callback(lambda f: self._done(job.key, dask_key, f, report))

    def _done(self, key: int, dask_key: str, future: Future[Any], report: Report) -> None:
        """Report how the attempt's future ended (from Dask's callback thread).

        ``report`` is the one of the run that submitted it: a reused executor may serve
        another run by the time an earlier run's attempt ends.
        """
        with self._lock:
            if self._running.get(key) is future:
                del self._running[key]
            self._keys.pop(dask_key, None)
            if dask_key in self._given_up:
                self._given_up.discard(dask_key)
                return
        try:
            outcome = _outcome(key, future)
        except BaseException as exc:  # the client lost its scheduler, say: never leave it unsaid
            outcome = Outcome(key, False, None, exc, format_error(exc))
        report(outcome)

    def _workers_lost(self, dask_keys: Iterable[str], worker: str) -> None:
        """Fail the attempts that were running on a worker that died (an event arrived)."""
        lost: list[tuple[int, Report, Future[Any] | None]] = []
        with self._lock:
            for dask_key in dask_keys:
                found = self._keys.pop(dask_key, None)
                if found is not None and dask_key not in self._given_up:
                    key, report = found
                    lost.append((key, report, self._running.pop(key, None)))
                    self._given_up.add(dask_key)  # its future's own ending is not reported
        if not lost:
            return
        for key, report, _ in lost:
            report(_worker_died(key, worker))
        futures = [f for _, _, f in lost if f is not None]
        client = self._client
        if futures and client is not None:
            # Called on Dask's event loop, where a blocking call would deadlock.
            threading.Thread(target=_cancel, args=(client, futures), daemon=True).start()

    def cancel(self, key: int) -> None:
        """Give up on attempt ``key`` (its timeout passed): cancel its future, never report it.

        The worker gives up on the attempt by itself when its own clock reaches the
        attempt's timeout, which frees the worker's slot (see
        :func:`pipekit.executors._daskworker.attempt`).
        """
        with self._lock:
            future = self._running.pop(key, None)
            if future is None:
                return  # it has finished: its outcome is reported (and ignored)
            self._given_up.add(str(future.key))
        with contextlib.suppress(Exception):
            future.cancel()

    def gather(self, value: Any) -> Any:
        """Return the value behind a future (fetched from the cluster), or ``value`` itself."""
        from distributed import Future

        return value.result() if isinstance(value, Future) else value

    def shutdown(self, *, cancel: bool = False) -> None:
        """Stop watching this run's attempts; with ``cancel``, cancel those still running.

        The client and cluster stay up for the next run; :meth:`close` releases them.
        """
        with self._lock:
            futures = list(self._running.values())
            self._running.clear()  # the next run's keys start again: never confuse them
            if cancel:
                self._given_up.update(str(f.key) for f in futures)
                self._keys.clear()
        client = self._client
        if client is not None:
            _unwatch(client, self)
            if cancel and futures:
                _cancel(client, futures)


# -- in the submitting process ---------------------------------------------------------


def _outcome(key: int, future: Future[Any]) -> Outcome:
    """The outcome of an attempt whose future is done: its value stays remote."""
    status = future.status
    if status == "finished":
        return Outcome(key, True, future)
    if status == "error":
        return _failure(key, future.exception())
    err = PipekitError(
        f"the attempt's Dask task ended as {status!r}; its scheduler or client may have "
        "been restarted, or lost the connection"
    )
    return Outcome(key, False, None, err, f"PipekitError: {err}")


def _failure(key: int, exc: BaseException | None) -> Outcome:
    """The outcome of a future that erred."""
    from distributed import KilledWorker

    if isinstance(exc, Failed):
        return Outcome(key, False, None, exc.error, exc.text)
    if isinstance(exc, KilledWorker):
        return _worker_died(key, str(getattr(exc.last_worker, "address", "")))
    if exc is None:
        exc = PipekitError("the attempt's Dask task failed without an error")
    return Outcome(key, False, None, exc, format_error(exc))


def _not_submitted(job: Job, exc: Exception) -> Outcome:
    """The outcome of an attempt that ``Client.submit`` refused (its arguments, mostly)."""
    cause = exc.__cause__ if isinstance(exc.__cause__, Exception) else exc
    detail = error_head(cause).strip().split("\n", 1)[0][:300]
    err = PipekitError(
        f"task {job.context.task!r} could not be submitted to the Dask cluster "
        f"({detail}); pass picklable arguments (a value that "
        "cannot be pickled can only go to the threads or sequential executor)"
    )
    return Outcome(job.key, False, None, err, f"PipekitError: {err}")


def _worker_died(key: int, worker: str) -> Outcome:
    err = PipekitError(
        f"the Dask worker running this attempt died ({worker or 'unknown worker'}); it may "
        "have run out of memory or been killed"
    )
    return Outcome(key, False, None, err, f"WorkerDied: {err}")


def _cancel(client: Client, futures: list[Future[Any]]) -> None:
    with contextlib.suppress(Exception):
        client.cancel(futures)


# Worker-loss events: one subscription per client, fanned out to its executors.
_watch_lock = threading.Lock()
_watchers: dict[str, weakref.WeakSet[DaskExecutor]] = {}


def _watch(client: Client, executor: DaskExecutor) -> None:
    with _watch_lock:
        found = _watchers.get(client.id)
        if found is None:
            found = _watchers[client.id] = weakref.WeakSet()
            client.subscribe_topic("all", lambda event: _on_event(client.id, event))
        found.add(executor)


def _unwatch(client: Client, executor: DaskExecutor) -> None:
    """Stop telling ``executor``; unsubscribe when no executor of ``client`` is left.

    (A client still subscribed to "all" when it closes makes the scheduler log a
    CRITICAL error about the event it could not deliver.)
    """
    with _watch_lock:
        found = _watchers.get(client.id)
        if found is None:
            return
        found.discard(executor)
        if found:
            return
        del _watchers[client.id]
    with contextlib.suppress(Exception):
        client.unsubscribe_topic("all")


def _on_event(client_id: str, event: tuple[float, Any]) -> None:
    """A scheduler event: an unexpected worker removal fails the attempts it was running."""
    msg = event[1]
    if not isinstance(msg, dict) or msg.get("action") != "remove-worker" or msg.get("expected"):
        return
    keys = [str(k) for k in msg.get("processing-tasks") or ()]
    with _watch_lock:
        executors = list(_watchers.get(client_id, ()))
    for executor in executors:
        executor._workers_lost(keys, str(msg.get("worker", "")))


# The process-wide cluster of executor="dask".
_shared_lock = threading.Lock()
_shared: dict[str, tuple[Client, LocalCluster | None]] = {}


def _shared_client() -> Client:
    """The client of ``executor="dask"``: to ``$PIPEKIT_DASK_ADDRESS``, else a local cluster.

    Made once per address per process (a LocalCluster started by :func:`local_cluster`
    with Dask's defaults when no address is set) and closed at exit or by
    :func:`close_shared`.
    """
    from distributed import Client

    address = os.environ.get(ADDRESS_ENV, "")
    with _shared_lock:
        found = _shared.get(address)
        if found is not None and found[0].status not in ("closing", "closed"):
            return found[0]
        if not _shared:
            atexit.register(close_shared)
        cluster = None if address else local_cluster()
        client = (
            _client(address, f"in ${ADDRESS_ENV}")
            if address
            else Client(cluster, set_as_default=False)
        )
        _shared[address] = (client, cluster)
        return client


def _client(address: str, where: str) -> Client:
    """A client of the scheduler at ``address`` (``where``: where the address came from).

    Raises:
        PipekitError: the scheduler cannot be reached, or the address is malformed.
    """
    from distributed import Client

    try:
        return Client(address, set_as_default=False)
    except Exception as exc:  # OSError (refused, timed out), ValueError (a bad address)
        raise PipekitError(
            f"cannot connect to the Dask scheduler at {address!r} ({where}): "
            f"{type(exc).__name__}: {exc}; check the address and that the scheduler is "
            f"running, or unset ${ADDRESS_ENV} and give no address to start a local cluster"
        ) from exc


def close_shared() -> None:
    """Close the clients (and LocalCluster) that ``executor="dask"`` opened in this process."""
    with _shared_lock:
        opened = list(_shared.values())
        _shared.clear()
    for client, cluster in opened:
        with contextlib.suppress(Exception):
            client.close()
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close()
