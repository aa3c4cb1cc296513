"""The processes executor: what crossing into a worker process adds to the contract.

Task functions, arguments, results and errors travel by cloudpickle; a worker that
dies or is terminated must fail only its own attempt, and the run carries on.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from pipekit import dag, task
from pipekit.stores.memory import MemoryStore

from . import pipelines


@task
def scale(x: int, factor: int) -> tuple[int, int]:
    return os.getpid(), x * factor


@dag
def scaled() -> None:
    scale(7, 6)


def test_task_defined_in_a_test_module_runs_in_a_worker(store: MemoryStore) -> None:
    """A task defined at module level in a test module runs in another process."""
    run = scaled.run(executor="processes", store=store)
    pid, value = run.tasks["scale"].result
    assert value == 42
    assert pid != os.getpid()


def test_closure_and_lambda_tasks_run_in_a_worker(store: MemoryStore) -> None:
    """Tasks made from a local closure and from a lambda travel by value to the worker."""
    offset = 100

    def shift(x: int) -> tuple[int, int]:
        return os.getpid(), x + offset

    shifted = task(shift)
    negate = task(name="negate")(lambda pair: -pair[1])

    @dag
    def local() -> None:
        negate(shifted(1))

    run = local.run(executor="processes", store=store)
    assert run.tasks["shift"].result[1] == 101
    assert run.tasks["shift"].result[0] != os.getpid()
    assert run.tasks["negate"].result == -101


@task
def blob(size: int) -> bytes:
    return bytes(range(256)) * (size // 256)


@task
def digest(data: bytes) -> tuple[int, int]:
    return len(data), sum(data[:512])


@dag
def bulky() -> None:
    digest(blob(4 << 20))


def test_large_values_cross_the_pipes_intact(store: MemoryStore) -> None:
    """A result and an argument far larger than a pipe's buffer arrive whole."""
    run = bulky.run(executor="processes", store=store)
    assert run.tasks["digest"].result == (4 << 20, 2 * sum(range(256)))
    assert len(run.tasks["blob"].result) == 4 << 20


@task
def doomed() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@dag
def killed() -> None:
    doomed()


def test_killed_worker_fails_its_attempt(store: MemoryStore) -> None:
    """A worker killed mid-task fails that attempt with an error naming the worker's death."""
    run = killed.run(executor="processes", store=store, raise_on_failure=False)
    died = run.tasks["doomed"]
    assert died.state == "failed"
    assert died.attempts == 1
    assert died.error is not None
    assert "worker process running this attempt died" in died.error
    assert f"exit code {-signal.SIGKILL}" in died.error


def test_killed_worker_attempt_is_retried_in_a_new_worker(
    store: MemoryStore, tmp_path: Path
) -> None:
    """After a worker dies, the retry runs in a fresh worker and succeeds."""
    run = pipelines.reborn.run(executor="processes", store=store, marker=str(tmp_path / "marker"))
    phoenix_run = run.tasks["phoenix"]
    assert phoenix_run.state == "success"
    assert phoenix_run.attempts == 2
    assert phoenix_run.result != os.getpid()
    first, second = store.attempts(run.id, "phoenix")
    assert first.state == "failed"
    assert first.error is not None
    assert "died" in first.error
    assert second.state == "success"


@task
def make_lock() -> threading.Lock:
    return threading.Lock()


@task
def pid() -> int:
    return os.getpid()


@dag
def unpicklable_result() -> None:
    """With one worker these run in order: pid, make_lock, pid__1."""
    pid()
    make_lock()
    pid()


def test_unpicklable_result_fails_clearly_and_keeps_the_worker(store: MemoryStore) -> None:
    """A result that cannot be pickled fails its task with a clear error; the worker lives on."""
    run = unpicklable_result.run(
        executor="processes", store=store, max_workers=1, raise_on_failure=False
    )
    lock = run.tasks["make_lock"]
    assert lock.state == "failed"
    assert lock.error is not None
    assert "result cannot be sent back from the worker process" in lock.error
    assert "_thread.lock" in lock.error
    # One worker served all three tasks: the bad result did not cost it its life.
    assert run.tasks["pid__1"].state == "success"
    assert run.tasks["pid__1"].result == run.tasks["pid"].result


@task
def consume(value: object) -> str:
    return repr(value)


@dag
def unpicklable_argument() -> None:
    consume(threading.Lock())


def test_unpicklable_argument_fails_clearly(store: MemoryStore) -> None:
    """An argument that cannot be pickled fails the task with an error saying what to do."""
    run = unpicklable_argument.run(executor="processes", store=store, raise_on_failure=False)
    failed = run.tasks["consume"]
    assert failed.state == "failed"
    assert failed.attempts == 1
    assert failed.error is not None
    assert "'consume' or its arguments cannot be sent to a worker process" in failed.error
    assert "use the threads executor" in failed.error


class TwoPartError(Exception):
    """An exception that pickles but cannot be rebuilt: its constructor takes two arguments."""

    def __init__(self, what: str, why: str) -> None:
        super().__init__(f"{what} failed: {why}")


@task(timeout=10)  # only bounds a regression's hang: the worker's start counts too
def raise_two_part() -> None:
    raise TwoPartError("load", "disk full")


@dag
def unrebuildable_error() -> None:
    raise_two_part()


def test_error_that_cannot_be_rebuilt_still_fails_the_task(store: MemoryStore) -> None:
    """An exception that pickles but fails to unpickle fails its task at once, with its text."""
    run = unrebuildable_error.run(executor="processes", store=store, raise_on_failure=False)
    failed = run.tasks["raise_two_part"]
    assert failed.state == "failed"
    assert failed.error is not None
    assert "load failed: disk full" in failed.error


hang_long = task(name="hang", timeout=0.5)(pipelines.block_until_released)


@dag
def stuck_worker(workdir: str) -> None:
    hang_long(workdir)


def _gone(pid: int) -> bool:
    """True when process ``pid`` has ended (exited, or a zombie awaiting its reaper)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):  # gone before, or while, it is read
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def test_timed_out_worker_is_terminated(store: MemoryStore, workdir: str) -> None:
    """The worker process of a timed-out attempt is terminated, not left running."""
    run = stuck_worker.run(
        executor="processes", store=store, workdir=workdir, raise_on_failure=False
    )
    assert run.tasks["hang"].error is not None
    assert run.tasks["hang"].error.startswith("TaskTimeout")
    worker = int(Path(workdir, "hang.pid").read_text())
    assert worker != os.getpid()
    deadline = time.monotonic() + 1
    while not _gone(worker) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _gone(worker)


def test_a_terminal_ctrl_c_lets_the_running_backfill_date_finish(tmp_path: Path) -> None:
    """Ctrl-C reaches the worker processes too (one process group): they leave it to
    pipekit, so a backfill's first Ctrl-C lets the running date succeed, as promised."""
    script = Path(__file__).with_name("ctrl_c_backfill.py")
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        start_new_session=True,  # its own process group, as a terminal gives a command
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("2024-")]
    assert lines == ["2024-01-01 success", "2024-01-02 not_run", "2024-01-03 not_run"], (
        proc.stdout + proc.stderr
    )


class _PausingLock:
    """The executor's lock; the reader thread pauses once right after releasing it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.armed = True
        self.paused = threading.Event()
        self.resume = threading.Event()

    def __enter__(self) -> None:
        self.lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self.lock.release()
        if self.armed and threading.current_thread().name == "pipekit-proc-reader":
            self.armed = False
            self.paused.set()
            self.resume.wait(10)


def _say_done() -> str:
    return "first done"


def _sleep_long() -> None:
    time.sleep(30)  # killed by the cancel


def test_an_outcome_read_as_its_worker_takes_a_job_that_is_cancelled_is_still_reported() -> None:
    """The first job's outcome is read and its worker is idle again; before the outcome is
    reported, the worker takes a second job that times out. The first is still reported."""
    from pipekit.context import TaskContext
    from pipekit.executors import Job
    from pipekit.executors.processes import ProcessesExecutor

    def job(key: int, fn: Any, timeout: float | None = None) -> Job:
        return Job(key, fn, (), {}, TaskContext("run", "dag", fn.__name__, 1, {}), timeout)

    reported: list[Any] = []
    executor = ProcessesExecutor(max_workers=2)
    pausing = _PausingLock()
    executor._lock = pausing  # type: ignore[assignment]
    executor.start(reported.append)
    try:
        executor.submit(job(1, _say_done))
        assert pausing.paused.wait(10)  # outcome 1 read, its worker back in the pool
        executor.submit(job(2, _sleep_long, timeout=0.1))
        executor.cancel(2)  # the second job timed out: its worker is killed
        pausing.resume.set()
        deadline = time.monotonic() + 10
        while not reported and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        pausing.resume.set()
        executor.shutdown(cancel=True)
    assert [(o.key, o.ok, o.value) for o in reported] == [(1, True, "first done")]
