"""Property test of the threads executor's pool: random submits, cancels and releases.

The pool wakes workers one at a time and lets a finishing worker take the next queued
job (see ``pipekit/executors/threads.py``), so which thread runs which job, and whether
a cancel finds its job queued or running, depends on timing. What must hold whatever
the timing:

- a job never cancelled gets exactly one outcome, a cancelled one at most one (none if
  the cancel found it queued or running; one if it had already finished);
- no job runs twice, every reported job ran, and no more jobs run at once than
  ``max_workers`` plus those abandoned by a cancel (a thread cannot be killed: it
  finishes its job unreported), plus one run by the test's thread;
- a job that ``run_quick()`` ran in the test's thread (the non-blocking jobs share one
  task, known to be quick from the start) is returned there, never also reported.
"""

from __future__ import annotations

import queue
import threading

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipekit.context import TaskContext
from pipekit.executors import Job, Outcome, ThreadsExecutor

WAIT = 5.0
"""Upper bound, in seconds, on waiting for an outcome; passing examples never wait long."""

# An operation: ("submit", blocks), ("cancel", which), ("release", which), or
# ("quick", 0); ``which`` picks one of the jobs submitted so far (modulo their count).
_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("submit"), st.booleans()),
        st.tuples(st.just("cancel"), st.integers(0, 50)),
        st.tuples(st.just("release"), st.integers(0, 50)),
        st.tuples(st.just("quick"), st.just(0)),
    ),
    max_size=25,
)


class _Jobs:
    """The jobs of one example: their gates, how often each ran, and how many ran at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.gates: list[threading.Event] = []
        self.runs: dict[int, int] = {}
        self.running = 0
        self.most = 0

    def make(self, key: int, blocks: bool) -> Job:
        gate = threading.Event()
        if not blocks:
            gate.set()
        self.gates.append(gate)

        def body() -> int:
            with self.lock:
                self.runs[key] = self.runs.get(key, 0) + 1
                self.running += 1
                self.most = max(self.most, self.running)
            try:
                gate.wait(WAIT)
                return key
            finally:
                with self.lock:
                    self.running -= 1

        # Blocking jobs each have a task of their own, never quick: run_quick() takes
        # only the non-blocking ones, so the test's thread never waits on a gate.
        name = f"t{key}" if blocks else "quick"
        return Job(key, body, (), {}, TaskContext("run", "dag", name, 1, {}))

    def wait_idle(self) -> None:
        """Wait until no job body runs (abandoned ones included)."""
        for _ in range(int(WAIT / 0.001)):
            with self.lock:
                if self.running == 0:
                    return
            threading.Event().wait(0.001)
        raise AssertionError("a job body still runs")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=_OPS, max_workers=st.integers(1, 4))
def test_every_uncancelled_job_reports_exactly_once_and_no_job_runs_twice(
    ops: list[tuple[str, object]], max_workers: int
) -> None:
    executor = ThreadsExecutor(max_workers, quick=float("inf"))
    executor._quick[("dag", "quick")] = True  # the non-blocking jobs' task is known quick
    outcomes: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
    executor.start(outcomes.put)
    jobs = _Jobs()
    cancelled: set[int] = set()
    here: list[int] = []  # jobs run_quick() ran in this thread
    key = 0
    for op, arg in ops:
        if op == "submit":
            executor.submit(jobs.make(key, bool(arg)))
            key += 1
        elif key and op == "cancel":
            which = int(str(arg)) % key
            executor.cancel(which)
            cancelled.add(which)
        elif key and op == "release":
            jobs.gates[int(str(arg)) % key].set()
        elif op == "quick":
            done = executor.run_quick()
            if done is not None:
                assert done.ok and done.value == done.key
                here.append(done.key)
    for gate in jobs.gates:
        gate.set()
    expected = set(range(key)) - cancelled
    got: list[int] = list(here)
    while not expected <= set(got):  # a cancelled job that had finished may report too
        got.append(outcomes.get(timeout=WAIT).key)
    executor.shutdown()
    jobs.wait_idle()
    while not outcomes.empty():  # late outcomes: only of jobs that finished before a cancel
        got.append(outcomes.get_nowait().key)

    assert len(got) == len(set(got)), sorted(got)
    assert set(got) >= expected
    assert set(got) - expected <= cancelled
    assert all(n == 1 for n in jobs.runs.values()), jobs.runs
    assert set(jobs.runs) >= set(got)  # every reported job really ran
    assert jobs.most <= max_workers + len(cancelled) + (1 if here else 0)
