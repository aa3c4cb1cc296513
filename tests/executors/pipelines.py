"""Small DAGs for the executor tests; every executor, worker processes included, can run them.

Tasks report what they did through files in the run's ``workdir`` parameter rather
than through module state, because state in a worker process never reaches the test.
Task functions and the helpers they call travel to worker processes by reference, so
a worker imports this module, which stays light.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pipekit
from pipekit import dag, task

RELEASE = "release"
"""A file that, once in the workdir, ends :func:`block_until_released` (the fixture writes it)."""


def note(workdir: str, name: str) -> int:
    """Append ``name`` to the workdir's call log; return how often it is there now."""
    with Path(workdir, "calls").open("a") as log:
        log.write(f"{name}\n")
    return calls(workdir).count(name)


def calls(workdir: str) -> list[str]:
    """The names noted so far, in the order the tasks ran."""
    log = Path(workdir, "calls")
    return log.read_text().split() if log.exists() else []


# -- data flow ---------------------------------------------------------------------------


@task
def source(workdir: str, value: int) -> int:
    note(workdir, "source")
    return value


@task
def double(workdir: str, x: int) -> int:
    note(workdir, "double")
    return 2 * x


@task
def square(workdir: str, x: int) -> int:
    note(workdir, "square")
    return x * x


@task
def add(workdir: str, x: int, y: int) -> int:
    note(workdir, "add")
    return x + y


@dag
def chain(workdir: str) -> None:
    """source(5) -> double -> double__1."""
    double(workdir, double(workdir, source(workdir, 5)))


@dag
def diamond(workdir: str) -> None:
    """source(3) -> (double, square) -> add."""
    top = source(workdir, 3)
    add(workdir, double(workdir, top), square(workdir, top))


# -- failure -----------------------------------------------------------------------------


@task
def broken(workdir: str) -> int:
    note(workdir, "broken")
    raise ValueError("broken on purpose")


@dag
def failing(workdir: str) -> None:
    """broken -> double -> double__1, and an independent source(7)."""
    double(workdir, double(workdir, broken(workdir)))
    source(workdir, 7)


class LockedError(Exception):
    """An exception that cannot be pickled: it holds a lock."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()


@task
def raise_locked() -> None:
    raise LockedError("the original message")


@dag
def unpicklable_error() -> None:
    """raise_locked raises an exception that cannot cross a process boundary."""
    raise_locked()


# -- retries -----------------------------------------------------------------------------


@task
def cancelled() -> None:
    """Raises a BaseException that is not an Exception (asyncio's cancellation)."""
    import asyncio

    raise asyncio.CancelledError("cancelled on purpose")


@dag
def cancelling(workdir: str) -> None:
    """A task that raises CancelledError, its downstream task, and an independent one."""
    double(workdir, cancelled())
    source(workdir, 5)


@task(retries=2, retry_on=ConnectionError)
def flaky(workdir: str) -> int:
    n = note(workdir, "flaky")
    if n < 3:
        raise ConnectionError(f"attempt {n} failed")
    return n


@dag
def recovers(workdir: str) -> None:
    """flaky fails twice, then returns 3."""
    flaky(workdir)


@task(retries=3, retry_on=ConnectionError)
def picky(workdir: str) -> int:
    note(workdir, "picky")
    raise ValueError("retrying will not help")


@dag
def gives_up(workdir: str) -> None:
    """picky raises an error its retry_on does not cover."""
    picky(workdir)


# -- dying workers (only for executors whose workers are processes) ---------------------


@task(retries=1)
def phoenix(marker: str) -> int:
    """Kill the worker process running the first attempt (marker absent); then succeed."""
    if not os.path.exists(marker):
        Path(marker).touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return os.getpid()


@dag
def reborn(marker: str) -> None:
    """phoenix's first attempt kills its worker; the retry returns the new worker's pid."""
    phoenix(marker)


# -- timeouts ----------------------------------------------------------------------------


def block_until_released(workdir: str) -> None:
    """Block for up to 30 s, until the workdir holds the RELEASE file."""
    Path(workdir, "hang.pid").write_text(str(os.getpid()))
    note(workdir, "hang")
    deadline = time.monotonic() + 30
    while not Path(workdir, RELEASE).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    note(workdir, "hang-ended")


hang = task(name="hang", timeout=0.2)(block_until_released)


@dag
def stuck(workdir: str) -> None:
    """hang (timeout 0.2 s) first, then an independent source(1)."""
    hang(workdir)
    source(workdir, 1)


# -- context -----------------------------------------------------------------------------


@task(retries=1)
def whoami(workdir: str) -> dict[str, Any]:
    ctx = pipekit.context()
    if note(workdir, ctx.task) == 1:
        raise ConnectionError("the first attempt fails, so that the attempt number shows")
    return {
        "run_id": ctx.run_id,
        "dag": ctx.dag,
        "task": ctx.task,
        "attempt": ctx.attempt,
        "params": dict(ctx.params),
    }


@dag
def introspect(workdir: str, region: str = "eu", limit: int = 3) -> None:
    """whoami twice (task ids whoami and whoami__1)."""
    whoami(workdir)
    whoami(workdir)


# -- concurrency -------------------------------------------------------------------------


@task
def crowd(workdir: str, name: str) -> int:
    """Stay in the workdir's "room" for 50 ms; return the most tasks seen in it at once."""
    room = Path(workdir, "room")
    room.mkdir(exist_ok=True)
    me = room / name
    me.touch()
    most = 0
    leave = time.monotonic() + 0.05
    while time.monotonic() < leave:
        most = max(most, len(os.listdir(room)))
        time.sleep(0.005)
    me.unlink()
    return most


@dag
def crowded(workdir: str) -> None:
    """Four independent crowd tasks."""
    for name in "abcd":
        crowd(workdir, name)


@task
def meet(workdir: str, name: str, parties: int) -> int:
    """Wait (up to 2 s) until ``parties`` meet tasks have arrived; fail if they never do."""
    hall = Path(workdir, "hall")
    hall.mkdir(exist_ok=True)
    (hall / name).touch()
    deadline = time.monotonic() + 2
    while (present := len(os.listdir(hall))) < parties:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {present} of {parties} tasks were running at once")
        time.sleep(0.005)
    return present


@dag
def gathering(workdir: str) -> None:
    """Four meet tasks that can only finish if all four run at once."""
    for name in "abcd":
        meet(workdir, name, 4)


# -- one executor object, run after run --------------------------------------------------


@task
def perish() -> None:
    """Kill the worker process running it (no retries: the run fails with WorkerDied)."""
    os.kill(os.getpid(), signal.SIGKILL)


@dag
def perishing(workdir: str) -> None:
    """perish kills its worker; an independent source(9) still succeeds."""
    perish()
    source(workdir, 9)


# -- an error that cannot be turned into text ---------------------------------------------


class Unprintable(Exception):
    """An exception whose ``str()`` raises."""

    def __str__(self) -> str:
        raise RuntimeError("str() of this error fails on purpose")


@task
def raise_unprintable() -> None:
    raise Unprintable("hidden")


@dag
def unprintable(workdir: str) -> None:
    """raise_unprintable fails with an Unprintable; an independent source(4) succeeds."""
    raise_unprintable()
    source(workdir, 4)


# -- a BaseException raised by the task itself, away from the loop's thread ---------------


class Halt(BaseException):
    """A BaseException that is neither an Exception nor one task_failed() lists."""


@task(timeout=5)
def halt() -> None:
    raise Halt("halted on purpose")


@dag
def halting(workdir: str) -> None:
    """halt (with a timeout, so never in the loop's thread) raises Halt; source(6) runs."""
    halt()
    source(workdir, 6)


@task
def perish_on_the_2nd(ds: Any) -> int:
    """Kill the worker process on the 2nd of the month; else return the worker's pid."""
    if ds.day == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return os.getpid()


@dag
def daily_perishing(ds: Any) -> None:
    """perish_on_the_2nd(ds): a backfill's second date kills its worker."""
    perish_on_the_2nd(ds)
